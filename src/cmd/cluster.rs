//! `kvr cluster status|promote|remove|transfer-leader`: against any member
//! (`--server`); changes are made by the leader, which the member finds.
//! Each prints the cluster's status afterwards: a table, or with `--json`
//! (status) the JSON of `GET /v1/cluster`.

use std::io::Write;

use crate::cli::{ClusterAction, ClusterCommand, Global};
use crate::client::Client;
use crate::error::Error;

pub fn run(g: &Global, args: ClusterCommand) -> anyhow::Result<()> {
    let Some(servers) = super::remote(g)? else {
        return Err(Error::invalid(
            "kvr cluster needs --server URL (any member of the cluster), not a database file",
        )
        .into());
    };
    let client = Client::new(
        servers,
        super::token(g)?,
        super::seconds(g.timeout, "--timeout")?,
        g.cacert.as_deref(),
    )?;
    let (status, json) = match args.action {
        ClusterAction::Status { json } => (client.cluster(false, "/v1/cluster", None)?, json),
        ClusterAction::Promote { id } => (
            client.cluster(true, &format!("/v1/cluster/promote?id={id}"), Some(id))?,
            false,
        ),
        ClusterAction::Remove { id } => (
            client.cluster(true, &format!("/v1/cluster/remove?id={id}"), Some(id))?,
            false,
        ),
        ClusterAction::TransferLeader { id } => (
            client.cluster(
                true,
                &format!("/v1/cluster/transfer-leader?id={id}"),
                Some(id),
            )?,
            false,
        ),
    };
    let text = if json {
        format!("{status}\n")
    } else {
        let view = leaders_view(g, &status);
        table(&status, view.as_ref())
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))?;
    Ok(())
}

/// Only the leader knows how far each node's log matches its own: a
/// status from another member is shown with the leader's, when the leader
/// answers (`Err`: why not, for the table's header).
fn leaders_view(
    g: &Global,
    status: &serde_json::Value,
) -> Option<std::result::Result<serde_json::Value, String>> {
    if status["state"] == "leader" {
        return None;
    }
    let Some(url) = status["leader"]["url"].as_str() else {
        return Some(Err("no leader is known".to_string()));
    };
    let asked = super::seconds(g.timeout, "--timeout")
        .ok()
        .map(|t| t.min(LEADER_VIEW_WAIT))
        .unwrap_or(LEADER_VIEW_WAIT);
    let view = Client::new(
        url,
        super::token(g).ok().flatten(),
        asked,
        g.cacert.as_deref(),
    )
    .and_then(|c| c.cluster(false, "/v1/cluster", None));
    Some(match view {
        Ok(v) if v["state"] == "leader" && v["cluster_id"] == status["cluster_id"] => Ok(v),
        Ok(_) => Err(format!("{url} is no longer the leader")),
        Err(e) => Err(format!("the leader at {url} did not answer: {e}")),
    })
}

/// How long the leader may take to answer for [`leaders_view`].
const LEADER_VIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The status as a table: one line per node. With `view` (the leader's
/// status, asked because `s` is another member's): MATCHED and LAG from it.
fn table(
    s: &serde_json::Value,
    view: Option<&std::result::Result<serde_json::Value, String>>,
) -> String {
    let leader = s["leader"]["id"].as_u64();
    let seen = match view {
        None => String::new(),
        Some(Ok(v)) => format!(
            "; MATCHED and LAG as node {}, the leader, sees them",
            v["node_id"]
        ),
        Some(Err(why)) => format!("; MATCHED and LAG only the leader knows, and {why}"),
    };
    // A leader that no majority hears is no row's leader: said so, not
    // "leader" over a table without one.
    let state = match s["state"].as_str() {
        Some("leader") if leader != s["node_id"].as_u64() => "leader without a majority",
        Some(state) => state,
        None => "?",
    };
    let mut text = format!(
        "cluster {}  term {}  committed {}  revision {}  (this is node {}, {state}{seen})\n",
        s["cluster_id"].as_str().unwrap_or("?"),
        s["term"],
        s["committed"],
        s["revision"],
        s["node_id"],
    );
    // The leader's figures of node `id`.
    let leaders = |id: Option<u64>| {
        let nodes = view?.as_ref().ok()?["nodes"].as_array()?;
        nodes.iter().find(|n| n["id"].as_u64() == id).cloned()
    };
    text.push_str(&format!(
        "{:>4}  {:<8}  {:<28}  {:<22}  {:>8}  {:>6}\n",
        "ID", "ROLE", "URL", "RAFT", "MATCHED", "LAG"
    ));
    for n in s["nodes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = n["id"].as_u64();
        let figures = leaders(id).unwrap_or_else(|| n.clone());
        let role = if id == leader {
            "leader"
        } else if n["voter"] == true {
            "voter"
        } else {
            "learner"
        };
        let num = |v: &serde_json::Value| v.as_u64().map_or("-".to_string(), |x| x.to_string());
        text.push_str(&format!(
            "{:>4}  {:<8}  {:<28}  {:<22}  {:>8}  {:>6}\n",
            num(&n["id"]),
            role,
            n["url"].as_str().unwrap_or("?"),
            n["raft"].as_str().unwrap_or("?"),
            num(&figures["matched"]),
            num(&figures["lag"]),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_names_every_node_and_the_leader() {
        let s = serde_json::json!({
            "cluster_id": "c1", "node_id": 1, "state": "leader", "term": 2,
            "committed": 9, "revision": 4, "leader": {"id": 1, "url": "http://a"},
            "nodes": [
                {"id": 1, "url": "http://a", "raft": "a:1", "voter": true, "matched": 9, "lag": 0},
                {"id": 2, "url": "http://b", "raft": "b:1", "voter": false, "matched": null, "lag": null}
            ]
        });
        let t = super::table(&s, None);
        assert!(t.starts_with("cluster c1  term 2"));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("leader") && lines[2].contains("http://a"));
        assert!(lines[3].contains("learner") && lines[3].trim_end().ends_with('-'));
    }

    /// A leader that no majority hears (its `leader` is none) is not
    /// called a plain "leader" above rows that name none (found by an
    /// audit); a node removed through itself is "removed".
    #[test]
    fn the_header_says_what_the_rows_show() {
        let s = serde_json::json!({
            "cluster_id": "c1", "node_id": 1, "state": "leader", "term": 2,
            "committed": 9, "revision": 4, "leader": null,
            "nodes": [{"id": 1, "url": "http://a", "raft": "a:1", "voter": true,
                "matched": 9, "lag": 0}]
        });
        let t = super::table(&s, None);
        assert!(
            t.lines()
                .next()
                .unwrap()
                .ends_with("(this is node 1, leader without a majority)"),
            "{t}"
        );
        assert!(!t.lines().nth(2).unwrap().contains("leader"), "{t}");
        let mut removed = s.clone();
        removed["state"] = "removed".into();
        removed["nodes"] = serde_json::json!([]);
        let t = super::table(&removed, None);
        assert!(
            t.lines()
                .next()
                .unwrap()
                .ends_with("(this is node 1, removed)"),
            "{t}"
        );
    }

    #[test]
    fn a_members_table_shows_the_leaders_replication_figures() {
        let node = |id: u64, matched: Option<u64>| {
            serde_json::json!({"id": id, "url": format!("http://n{id}"), "raft": "r",
                "voter": true, "matched": matched, "lag": matched.map(|m| 9 - m)})
        };
        let follower = serde_json::json!({
            "cluster_id": "c1", "node_id": 2, "state": "follower", "term": 2,
            "committed": 9, "revision": 4, "leader": {"id": 1, "url": "http://n1"},
            "nodes": [node(1, None), node(2, None)]
        });
        let mut leader = follower.clone();
        leader["node_id"] = 1.into();
        leader["state"] = "leader".into();
        leader["nodes"] = serde_json::json!([node(1, Some(9)), node(2, Some(7))]);
        let t = super::table(&follower, Some(&Ok(leader)));
        assert!(
            t.lines().next().unwrap().ends_with(
                "(this is node 2, follower; MATCHED and LAG as node 1, the leader, sees them)"
            ),
            "{t}"
        );
        let row2 = t.lines().nth(3).unwrap();
        assert!(row2.trim_end().ends_with("7       2"), "{t}");
        let t = super::table(&follower, Some(&Err("no leader is known".into())));
        assert!(
            t.lines().next().unwrap().ends_with(
                "follower; MATCHED and LAG only the leader knows, and no leader is known)"
            ),
            "{t}"
        );
    }
}
