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
    let mut out = std::io::stdout().lock();
    let text = if json {
        format!("{status}\n")
    } else {
        table(&status)
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))?;
    Ok(())
}

/// The status as a table: one line per node.
fn table(s: &serde_json::Value) -> String {
    let leader = s["leader"]["id"].as_u64();
    let mut text = format!(
        "cluster {}  term {}  committed {}  revision {}  (this is node {}, {})\n",
        s["cluster_id"].as_str().unwrap_or("?"),
        s["term"],
        s["committed"],
        s["revision"],
        s["node_id"],
        s["state"].as_str().unwrap_or("?"),
    );
    text.push_str(&format!(
        "{:>4}  {:<8}  {:<28}  {:<22}  {:>8}  {:>6}\n",
        "ID", "ROLE", "URL", "RAFT", "MATCHED", "LAG"
    ));
    for n in s["nodes"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let id = n["id"].as_u64();
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
            num(&n["matched"]),
            num(&n["lag"]),
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
        let t = super::table(&s);
        assert!(t.starts_with("cluster c1  term 2"));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("leader") && lines[2].contains("http://a"));
        assert!(lines[3].contains("learner") && lines[3].trim_end().ends_with('-'));
    }
}
