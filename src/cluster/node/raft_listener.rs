//! The raft listener's requests (`/raft/...`): openraft's RPCs between
//! members, snapshots, and what followers forward to the leader (writes,
//! read indexes, joins, admin commands). Peers are checked first: the
//! cluster id and, with TLS, the certificate (see `check_peer`).

use super::*;

impl Node {
    /// Handles one request on the raft listener.
    pub async fn handle_raft(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == crate::cluster::start::HELLO_PATH {
            // Before the peer check: a starting copy of this node's files
            // asks who serves here (`start::refuse_a_second_process`).
            let hello = serde_json::json!({
                "cluster_id": self.me.cluster_id,
                "node_id": self.me.node_id,
                "process": crate::server::joining::this_process(),
            });
            return answer_status(StatusCode::OK, hello.to_string());
        }
        if let Err(why) = self.check_peer(&req) {
            let from = req
                .headers()
                .get(H_FROM)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_string();
            // One key for all: the sender id is the request's word, and
            // each new key is kept (a flood of made-up ids would grow it).
            crate::cluster::network::log_rarely(
                "refusing a raft request",
                format_args!(
                    "kvr serve: refusing raft requests from node {from}: {why}{}",
                    crate::cluster::network::refusal_hint(&why)
                ),
            );
            return answer_status(StatusCode::FORBIDDEN, why);
        }
        let kind = req
            .uri()
            .path()
            .strip_prefix("/raft/")
            .unwrap_or("")
            .to_string();
        if kind == "snapshot" {
            return self.receive_snapshot(req).await;
        }
        let from = sender(req.headers());
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return answer_status(StatusCode::BAD_REQUEST, e.to_string()),
        };
        match kind.as_str() {
            "append" => match decode(&body) {
                Ok(rpc) => {
                    let answer = self.raft.append_entries(rpc).await;
                    // Readiness: the leader is there (`liveness.rs`).
                    if answer.as_ref().is_ok_and(|a| {
                        !matches!(a, openraft::raft::AppendEntriesResponse::HigherVote(_))
                    }) {
                        self.liveness.heard_from_leader();
                    }
                    reply(answer.map_err(|e| e.to_string()))
                }
                Err(e) => reply::<()>(Err(e)),
            },
            "vote" => match decode(&body) {
                Ok(rpc) => reply(self.raft.vote(rpc).await.map_err(|e| e.to_string())),
                Err(e) => reply::<()>(Err(e)),
            },
            "transfer-leader" => match decode(&body) {
                Ok(rpc) => reply(
                    self.raft
                        .handle_transfer_leader(rpc)
                        .await
                        .map_err(|e| e.to_string()),
                ),
                Err(e) => reply::<()>(Err(e)),
            },
            "pre-vote" => match decode(&body) {
                Ok(rpc) => reply(self.raft.pre_vote(rpc).await.map_err(|e| e.to_string())),
                Err(e) => reply::<()>(Err(e)),
            },
            "write" => match decode::<Command>(&body) {
                Ok(mut cmd) => {
                    if let Command::Write(w) = &mut cmd {
                        // The leader's time decides expiry. (Just decoded:
                        // not shared, so this copies nothing.)
                        Arc::make_mut(w).time_ms = self.cluster_now_ms();
                    }
                    // A leader without its majority takes none (never proposed).
                    let out = if self.raft.is_leader() && self.check_lease().is_ok() {
                        forwarded(match cmd {
                            Command::Write(w) => self.propose_write(w).await,
                            other => match self.liveness.bound(self.raft.client_write(other)).await
                            {
                                Ok(r) => r.map(|r| r.data).map_err(NotCommitted::Raft),
                                Err(why) => Err(NotCommitted::Unanswered(why)),
                            },
                        })
                    } else {
                        Forwarded::Err(WireFailure::NotProposed)
                    };
                    reply(Ok(out))
                }
                Err(e) => reply::<()>(Err(e)),
            },
            // A follower's round of writes: proposed together, one entry each.
            "write-batch" => match decode::<Vec<Arc<WriteCommand>>>(&body) {
                Ok(mut cmds) => {
                    let now = self.cluster_now_ms();
                    for w in &mut cmds {
                        Arc::make_mut(w).time_ms = now;
                    }
                    let out = if self.raft.is_leader() && self.check_lease().is_ok() {
                        let proposed = self.propose_round(cmds).await;
                        Forwarded::Ok(proposed.into_iter().map(forwarded).collect::<Vec<_>>())
                    } else {
                        Forwarded::Err(WireFailure::NotProposed)
                    };
                    reply(Ok(out))
                }
                Err(e) => reply::<()>(Err(e)),
            },
            "read-index" => {
                let out = match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                    Ok(r) => Forwarded::Ok(r.index()),
                    Err(_) => Forwarded::Err(WireFailure::NotProposed),
                };
                reply(Ok(out))
            }
            "join" => match decode::<JoinRequest>(&body) {
                Ok(j) => {
                    let out = match self.join_as_leader(j).await {
                        Ok(a) => Forwarded::Ok(a),
                        Err(e) => Forwarded::Err(WireFailure::of(e)),
                    };
                    reply(Ok(out))
                }
                Err(e) => reply::<()>(Err(e)),
            },
            "admin" => match decode::<Admin>(&body) {
                Ok(op) => {
                    let out = match self.admin_as_leader(op).await {
                        Ok(()) => Forwarded::Ok(()),
                        Err(e) => Forwarded::Err(WireFailure::of(e)),
                    };
                    reply(Ok(out))
                }
                Err(e) => reply::<()>(Err(e)),
            },
            // The leader says it removed this node. Not taken on the
            // sender's word: anyone who reaches this port can name any
            // sender, and a removal is final. The sender, reached at its
            // address in this node's membership, must confirm it.
            "removed" => match from {
                Some(from) if from != self.me.node_id => {
                    tokio::spawn(self.clone().confirm_removal(from));
                    reply(Ok(()))
                }
                _ => answer_status(
                    StatusCode::FORBIDDEN,
                    "a node is told of its removal by the leader that removed it".to_string(),
                ),
            },
            // A member that hears no leader asks whether it was removed
            // (see `Node::watch_for_removal`).
            "was-i-removed" => match from {
                Some(from) => reply(Ok(self.was_removed(from).await)),
                None => reply::<()>(Err("no sender id".to_string())),
            },
            // A leader about to add this node checks that it can reach it.
            "hello" => reply(Ok(())),
            _ => answer_status(StatusCode::NOT_FOUND, format!("no raft route {kind}")),
        }
    }

    fn check_peer(&self, req: &Request<Incoming>) -> std::result::Result<(), String> {
        let h = req.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        match &self.me.token {
            Some(token) => {
                let given = get(hyper::header::AUTHORIZATION.as_str());
                let ok = given
                    .split_once(' ')
                    .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t == token);
                if !ok {
                    return Err("wrong or missing cluster token".into());
                }
            }
            // A member restarted without the token refuses its peers as they
            // refuse it: it took their entries, counted in their majority and
            // looked caught up to the leader, while every request of its own
            // was refused (found by an audit).
            None if h.contains_key(hyper::header::AUTHORIZATION) => {
                return Err(
                    "this node has no cluster token and the sender presents one: \
                            every member needs the same cluster token"
                        .into(),
                );
            }
            None => {}
        }
        if get(H_CLUSTER) != self.me.cluster_id {
            return Err(format!(
                "this node belongs to cluster {}, not {:?}",
                self.me.cluster_id,
                get(H_CLUSTER)
            ));
        }
        if get(H_TO) != self.me.node_id.to_string() {
            return Err(format!(
                "this is node {}, not node {:?}",
                self.me.node_id,
                get(H_TO)
            ));
        }
        if get(H_FROM).parse::<NodeId>().is_err() {
            return Err("no sender id".into());
        }
        Ok(())
    }

    async fn receive_snapshot(&self, req: Request<Incoming>) -> Response<Body> {
        let result = self.receive_snapshot_inner(req).await;
        reply(result.map_err(|e| e.to_string()))
    }

    async fn receive_snapshot_inner(
        &self,
        req: Request<Incoming>,
    ) -> std::result::Result<openraft::raft::SnapshotResponse<TypeConfig>, Error> {
        let head = req
            .headers()
            .get(H_SNAPSHOT)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::invalid("no snapshot header"))?;
        let head = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, head)
            .map_err(|e| Error::invalid(format!("bad snapshot header: {e}")))?;
        let (vote, meta): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>) =
            postcard::from_bytes(&head)
                .map_err(|e| Error::invalid(format!("bad snapshot header: {e}")))?;
        let file = tempfile::tempfile_in(&self.tmp_dir)
            .map_err(|e| Error::io("cannot create a file for a received snapshot", e))?;
        let mut out = tokio::fs::File::from_std(file);
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| Error::io("snapshot stream broke", io::Error::other(e)))?;
            if let Ok(data) = frame.into_data() {
                tokio::io::AsyncWriteExt::write_all(&mut out, &data)
                    .await
                    .map_err(|e| Error::io("cannot write a received snapshot", e))?;
            }
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| Error::io("cannot write a received snapshot", e))?;
        let file = out.into_std().await;
        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotData::File(file),
        };
        self.raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| Error::Storage(format!("installing a snapshot failed: {e}")))
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &Bytes) -> std::result::Result<T, String> {
    postcard::from_bytes(body).map_err(|e| format!("bad request body: {e}"))
}

fn reply<T: Serialize>(answer: std::result::Result<T, String>) -> Response<Body> {
    match postcard::to_allocvec(&answer) {
        Ok(bytes) => {
            let mut resp = Response::new(full(bytes));
            // For the asker to compare clocks (`network::compare_clocks`).
            resp.headers_mut().insert(
                crate::cluster::network::H_TIME,
                hyper::header::HeaderValue::from(crate::types::now_ms()),
            );
            resp
        }
        Err(e) => answer_status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn answer_status(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp
}

/// The sender's node id (checked present by `check_peer`).
fn sender(headers: &hyper::HeaderMap) -> Option<NodeId> {
    headers.get(H_FROM)?.to_str().ok()?.parse().ok()
}
