
use builtin;
use str;

set edit:completion:arg-completer[kvr] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'kvr'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'kvr'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand put 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
            cand get 'Write a key''s value to stdout, byte for byte'
            cand delete 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
            cand del 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
            cand rm 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
            cand range 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
            cand watch 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one'
            cand batch 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server''s batch limits, else exit 2 with nothing written; see --chunk-size)'
            cand stats 'Print {"keys":…,"revision":…,"file_bytes":…}'
            cand backup 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)'
            cand check 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)'
            cand compact 'Give the --db file''s free space back to the file system (no other process may hold it); prints the size before and after'
            cand tui 'Browse and edit the database in a full-screen terminal UI (? for keys)'
            cand serve 'Serve the HTTP API: writes are group-committed through a write-ahead log'
            cand cluster 'A cluster''s members and leadership (needs --server: any member)'
            cand openapi 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
            cand bench 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored'
        }
        &'kvr;put'= {
            cand --if-revision 'Write only if the key''s current revision is N (0: only if absent)'
            cand --ttl 'Expire the key this long after the write: seconds (90) or with a unit (30s, 5m, 2h, 1d), at most 10 years. Without it, any earlier expiry of the key is cleared'
            cand --max-value-bytes 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server''s limit applies'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"revision":N}'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;get'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print the key''s JSON line (key, value, revision) instead'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;delete'= {
            cand --prefix 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched'
            cand --range 'Delete every key in [START, END), atomically'
            cand --if-revision 'Delete only if the key''s current revision is N (N > 0)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;del'= {
            cand --prefix 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched'
            cand --range 'Delete every key in [START, END), atomically'
            cand --if-revision 'Delete only if the key''s current revision is N (N > 0)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;rm'= {
            cand --prefix 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched'
            cand --range 'Delete every key in [START, END), atomically'
            cand --if-revision 'Delete only if the key''s current revision is N (N > 0)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;range'= {
            cand --prefix 'Only keys starting with P (intersected with START/END)'
            cand --limit 'At most N lines (N >= 1)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --reverse 'The same keys, in descending order'
            cand --keys-only 'Print only the keys'
            cand --count 'Print only {"count":n}, the number of keys the other options select (over --server the values are not sent)'
            cand --json 'Accepted for symmetry with the other commands: the output is JSON lines already'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;watch'= {
            cand --prefix 'Only keys starting with P (intersected with START/END)'
            cand --from-revision 'Start with the events from revision R on (those the server still keeps; older ones: exit 1); omitted: changes after the current one'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --keys-only 'Leave values out of put events'
            cand --progress 'Print the progress lines too: {"progress_revision":R} means every change up to R was printed'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;batch'= {
            cand --chunk-size 'Apply the input in parts of N lines (blank lines do not count), each part atomic on its own (the input as a whole is then not): for inputs over a server''s limits, e.g. `kvr range | kvr --server URL batch --chunk-size 10000`. A failing part stops the run; the parts before it stay applied'
            cand --max-value-bytes 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server''s limit applies'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"applied":n,"revision":N,"puts":p,"deletes":d} on stdout (the HTTP answer)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;stats'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Accepted for symmetry with the other commands: the output is JSON already'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;backup'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --force 'Replace DEST if it exists'
            cand --json 'Print {"revision":R,"keys":N,"bytes":B} (B: DEST''s size)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;check'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print one JSON object: {"ok":true,"keys":N,"revision":R,"expired":E}, or {"ok":false,"problems":[{"where":…,"what":…},…]} (exit 3)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;compact'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print {"before":B,"after":A}, the file''s size in bytes'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;tui'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;serve'= {
            cand --listen 'Address to listen on (port 0: any free port; the first stdout line names it)'
            cand --tls-cert 'Serve HTTPS with the certificate chain in this PEM file (leaf first); needs --tls-key'
            cand --tls-key 'The private key of --tls-cert, a PEM file'
            cand --max-value-bytes 'Largest value, in bytes (in cluster mode, --raft-listen, the default is 8388608: one request is one Raft entry)'
            cand --max-batch-ops 'Most operations in one batch request'
            cand --max-batch-bytes 'Largest batch request body, in bytes (in cluster mode the default is 8388608: one request is one Raft entry). A batch is held several times over while applied: serve warns at start when one could exhaust its memory'
            cand --max-body-mib 'Memory for request bodies being received or handled, server-wide, in MiB; beyond, 503 overloaded at once. Default: twice --memtable-mib; never less than one largest request'
            cand --queue-size 'Writes that may wait for the writer; beyond, 503 overloaded at once'
            cand --max-connections 'Open connections; beyond, new ones get 503 and are closed (but for /healthz, /readyz and /metrics, on a reserve of 8 more)'
            cand --header-timeout 'Seconds a client has to send a request''s headers'
            cand --idle-timeout 'Seconds a connection may make no progress before it is closed'
            cand --memtable-mib 'Memory for writes not yet flushed into the database file, in MiB: past it writes wait for a flush (and get 503 when the queue is full). Default: an eighth of the cache, between 16 and 128. It also bounds the log replayed after a crash'
            cand --history 'Watch history to keep, in revisions (0: none; watches then follow live changes only and cannot resume from an earlier revision)'
            cand --history-bytes 'Watch history to keep, in bytes of its events (each event''s key and value plus 24 bytes): the oldest events go first when either bound is reached'
            cand --workers 'Threads serving HTTP [default: one per CPU core; the group-commit writer and the flush have threads of their own]'
            cand --raft-listen 'Turn cluster mode on: node-to-node traffic uses only this address (port 0: any free port; stdout names it after the listening line)'
            cand --join 'Ask a member (any of these public URLs) to add this node; it catches up as a learner and then votes'
            cand --advertise-url 'The public URL others use for this node [default: the bound one]'
            cand --advertise-raft 'The raft address others use for this node [default: the bound one]'
            cand --cluster-token 'Shared secret of node-to-node traffic (mandatory unless every raft address is loopback)'
            cand --cluster-token-file 'Read the cluster token from this file (trailing newline removed)'
            cand --heartbeat-ms 'Leader heartbeat interval, in milliseconds'
            cand --election-timeout-ms 'Election timeout range, in milliseconds (MIN at least 3 x heartbeat)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --allow-unauthenticated 'Allow a non-loopback address without a token'
            cand -q 'No log line per request on stderr'
            cand --quiet 'No log line per request on stderr'
            cand --cluster-init 'Make this node the first of a new cluster (a file with data brings it in). Ignored on a file that is already a member'
            cand --learner 'Stay a non-voting learner after joining'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;cluster'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
            cand status 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
            cand promote 'Make a learner a voter'
            cand remove 'Remove a node from the cluster (it stops serving and exits)'
            cand transfer-leader 'Hand leadership to a voter'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kvr;cluster;status'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --json 'Print the JSON of GET /v1/cluster instead of the table'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;cluster;promote'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;cluster;remove'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;cluster;transfer-leader'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;cluster;help'= {
            cand status 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
            cand promote 'Make a learner a voter'
            cand remove 'Remove a node from the cluster (it stops serving and exits)'
            cand transfer-leader 'Hand leadership to a voter'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kvr;cluster;help;status'= {
        }
        &'kvr;cluster;help;promote'= {
        }
        &'kvr;cluster;help;remove'= {
        }
        &'kvr;cluster;help;transfer-leader'= {
        }
        &'kvr;cluster;help;help'= {
        }
        &'kvr;openapi'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;completions'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;help'= {
            cand put 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
            cand get 'Write a key''s value to stdout, byte for byte'
            cand delete 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
            cand range 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
            cand watch 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one'
            cand batch 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server''s batch limits, else exit 2 with nothing written; see --chunk-size)'
            cand stats 'Print {"keys":…,"revision":…,"file_bytes":…}'
            cand backup 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)'
            cand check 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)'
            cand compact 'Give the --db file''s free space back to the file system (no other process may hold it); prints the size before and after'
            cand tui 'Browse and edit the database in a full-screen terminal UI (? for keys)'
            cand serve 'Serve the HTTP API: writes are group-committed through a write-ahead log'
            cand bench 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored'
            cand cluster 'A cluster''s members and leadership (needs --server: any member)'
            cand openapi 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kvr;help;put'= {
        }
        &'kvr;help;get'= {
        }
        &'kvr;help;delete'= {
        }
        &'kvr;help;range'= {
        }
        &'kvr;help;watch'= {
        }
        &'kvr;help;batch'= {
        }
        &'kvr;help;stats'= {
        }
        &'kvr;help;backup'= {
        }
        &'kvr;help;check'= {
        }
        &'kvr;help;compact'= {
        }
        &'kvr;help;tui'= {
        }
        &'kvr;help;serve'= {
        }
        &'kvr;help;bench'= {
        }
        &'kvr;help;cluster'= {
            cand status 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
            cand promote 'Make a learner a voter'
            cand remove 'Remove a node from the cluster (it stops serving and exits)'
            cand transfer-leader 'Hand leadership to a voter'
        }
        &'kvr;help;cluster;status'= {
        }
        &'kvr;help;cluster;promote'= {
        }
        &'kvr;help;cluster;remove'= {
        }
        &'kvr;help;cluster;transfer-leader'= {
        }
        &'kvr;help;openapi'= {
        }
        &'kvr;help;completions'= {
        }
        &'kvr;help;help'= {
        }
        &'kvr;bench'= {
            cand --workload 'What each request does'
            cand --clients 'Concurrent clients (connections)'
            cand --duration 'Run this long [default: 10 s unless --requests is given]'
            cand --requests 'Stop after this many requests in all'
            cand --key-size 'Key length in bytes (random keys under `kvr-bench/`)'
            cand --value-size 'Value length in bytes'
            cand --keyspace 'Number of distinct keys the workload draws from (reads too: prefill them first, in this run or an earlier one)'
            cand --prefill 'Keys to write (`kvr-bench/` 0..N) before measuring'
            cand --read-ratio 'Share of reads in the mixed workload'
            cand --batch-size 'Operations per request of the batch workload'
            cand --range-size 'Keys per request of the range workload'
            cand --db 'The database file to measure (default: a temporary file, removed afterwards)'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]'
            cand --server 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)'
            cand --token 'Bearer token: the one to send with --server, or the one `serve` requires'
            cand --token-file 'Read the token from FILE (trailing newline removed)'
            cand --cacert 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s'
            cand --timeout 'With --server: the longest wait for a request (for streams: the longest time without progress)'
            cand --consistency 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable'
            cand --no-backoff 'Retry at once after a 503 instead of waiting the server''s Retry-After (1 s), as a well-behaved client would'
            cand --json 'Print one JSON object'
            cand -h 'Print help'
            cand --help 'Print help'
        }
    ]
    $completions[$command]
}
