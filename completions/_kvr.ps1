
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'kvr' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'kvr'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'kvr' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Write a key''s value to stdout, byte for byte')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically')
            [CompletionResult]::new('del', 'del', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically')
            [CompletionResult]::new('range', 'range', [CompletionResultType]::ParameterValue, 'Print keys in [START, END) as JSON lines, from one consistent snapshot')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server''s batch limits, else exit 2 with nothing written; see --chunk-size)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Print {"keys":…,"revision":…,"file_bytes":…}')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)')
            [CompletionResult]::new('compact', 'compact', [CompletionResultType]::ParameterValue, 'Give the --db file''s free space back to the file system (no other process may hold it); prints the size before and after')
            [CompletionResult]::new('tui', 'tui', [CompletionResultType]::ParameterValue, 'Browse and edit the database in a full-screen terminal UI (? for keys)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the HTTP API: writes are group-committed through a write-ahead log')
            [CompletionResult]::new('cluster', 'cluster', [CompletionResultType]::ParameterValue, 'A cluster''s members and leadership (needs --server: any member)')
            [CompletionResult]::new('openapi', 'openapi', [CompletionResultType]::ParameterValue, 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored')
            break
        }
        'kvr;put' {
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Write only if the key''s current revision is N (0: only if absent)')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Expire the key this long after the write: seconds (90) or with a unit (30s, 5m, 2h, 1d), at most 10 years. Without it, any earlier expiry of the key is cleared')
            [CompletionResult]::new('--max-value-bytes', '--max-value-bytes', [CompletionResultType]::ParameterName, 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server''s limit applies')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N}')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;get' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the key''s JSON line (key, value, revision) instead')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;delete' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched')
            [CompletionResult]::new('--range', '--range', [CompletionResultType]::ParameterName, 'Delete every key in [START, END), atomically')
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Delete only if the key''s current revision is N (N > 0)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;del' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched')
            [CompletionResult]::new('--range', '--range', [CompletionResultType]::ParameterName, 'Delete every key in [START, END), atomically')
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Delete only if the key''s current revision is N (N > 0)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;rm' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Delete every key starting with P ('''' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched')
            [CompletionResult]::new('--range', '--range', [CompletionResultType]::ParameterName, 'Delete every key in [START, END), atomically')
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Delete only if the key''s current revision is N (N > 0)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;range' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Only keys starting with P (intersected with START/END)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most N lines (N >= 1)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'The same keys, in descending order')
            [CompletionResult]::new('--keys-only', '--keys-only', [CompletionResultType]::ParameterName, 'Print only the keys')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Print only {"count":n}, the number of keys the other options select (over --server the values are not sent)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Accepted for symmetry with the other commands: the output is JSON lines already')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;watch' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Only keys starting with P (intersected with START/END)')
            [CompletionResult]::new('--from-revision', '--from-revision', [CompletionResultType]::ParameterName, 'Start with the events from revision R on (those the server still keeps; older ones: exit 1); omitted: changes after the current one')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--keys-only', '--keys-only', [CompletionResultType]::ParameterName, 'Leave values out of put events')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Print the progress lines too: {"progress_revision":R} means every change up to R was printed')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;batch' {
            [CompletionResult]::new('--chunk-size', '--chunk-size', [CompletionResultType]::ParameterName, 'Apply the input in parts of N lines (blank lines do not count), each part atomic on its own (the input as a whole is then not): for inputs over a server''s limits, e.g. `kvr range | kvr --server URL batch --chunk-size 10000`. A failing part stops the run; the parts before it stay applied')
            [CompletionResult]::new('--max-value-bytes', '--max-value-bytes', [CompletionResultType]::ParameterName, 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server''s limit applies')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"applied":n,"revision":N,"puts":p,"deletes":d} on stdout (the HTTP answer)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;stats' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Accepted for symmetry with the other commands: the output is JSON already')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;backup' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace DEST if it exists')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":R,"keys":N,"bytes":B} (B: DEST''s size)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;check' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object: {"ok":true,"keys":N,"revision":R,"expired":E}, or {"ok":false,"problems":[{"where":…,"what":…},…]} (exit 3)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;compact' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"before":B,"after":A}, the file''s size in bytes')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;tui' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (port 0: any free port; the first stdout line names it)')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with the certificate chain in this PEM file (leaf first); needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The private key of --tls-cert, a PEM file')
            [CompletionResult]::new('--max-value-bytes', '--max-value-bytes', [CompletionResultType]::ParameterName, 'Largest value, in bytes (in cluster mode, --raft-listen, the default is 8388608: one request is one Raft entry)')
            [CompletionResult]::new('--max-batch-ops', '--max-batch-ops', [CompletionResultType]::ParameterName, 'Most operations in one batch request')
            [CompletionResult]::new('--max-batch-bytes', '--max-batch-bytes', [CompletionResultType]::ParameterName, 'Largest batch request body, in bytes (in cluster mode the default is 8388608: one request is one Raft entry). A batch is held several times over while applied: serve warns at start when one could exhaust its memory')
            [CompletionResult]::new('--max-body-mib', '--max-body-mib', [CompletionResultType]::ParameterName, 'Memory for request bodies being received or handled, server-wide, in MiB; beyond, 503 overloaded at once. Default: twice --memtable-mib; never less than one largest request')
            [CompletionResult]::new('--queue-size', '--queue-size', [CompletionResultType]::ParameterName, 'Writes that may wait for the writer; beyond, 503 overloaded at once')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Open connections; beyond, new ones get 503 and are closed (but for /healthz, /readyz and /metrics, on a reserve of 8 more)')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Seconds a client has to send a request''s headers')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Seconds a connection may make no progress before it is closed')
            [CompletionResult]::new('--memtable-mib', '--memtable-mib', [CompletionResultType]::ParameterName, 'Memory for writes not yet flushed into the database file, in MiB: past it writes wait for a flush (and get 503 when the queue is full). Default: an eighth of the cache, between 16 and 128. It also bounds the log replayed after a crash')
            [CompletionResult]::new('--history', '--history', [CompletionResultType]::ParameterName, 'Watch history to keep, in revisions (0: none; watches then follow live changes only and cannot resume from an earlier revision)')
            [CompletionResult]::new('--history-bytes', '--history-bytes', [CompletionResultType]::ParameterName, 'Watch history to keep, in bytes of its events (each event''s key and value plus 24 bytes): the oldest events go first when either bound is reached')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Threads serving HTTP [default: one per CPU core; the group-commit writer and the flush have threads of their own]')
            [CompletionResult]::new('--raft-listen', '--raft-listen', [CompletionResultType]::ParameterName, 'Turn cluster mode on: node-to-node traffic uses only this address (port 0: any free port; stdout names it after the listening line)')
            [CompletionResult]::new('--join', '--join', [CompletionResultType]::ParameterName, 'Ask a member (any of these public URLs) to add this node; it catches up as a learner and then votes')
            [CompletionResult]::new('--advertise-url', '--advertise-url', [CompletionResultType]::ParameterName, 'The public URL others use for this node [default: the bound one]')
            [CompletionResult]::new('--advertise-raft', '--advertise-raft', [CompletionResultType]::ParameterName, 'The raft address others use for this node [default: the bound one]')
            [CompletionResult]::new('--cluster-token', '--cluster-token', [CompletionResultType]::ParameterName, 'Shared secret of node-to-node traffic (mandatory unless every raft address is loopback)')
            [CompletionResult]::new('--cluster-token-file', '--cluster-token-file', [CompletionResultType]::ParameterName, 'Read the cluster token from this file (trailing newline removed)')
            [CompletionResult]::new('--heartbeat-ms', '--heartbeat-ms', [CompletionResultType]::ParameterName, 'Leader heartbeat interval, in milliseconds')
            [CompletionResult]::new('--election-timeout-ms', '--election-timeout-ms', [CompletionResultType]::ParameterName, 'Election timeout range, in milliseconds (MIN at least 3 x heartbeat)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--allow-unauthenticated', '--allow-unauthenticated', [CompletionResultType]::ParameterName, 'Allow a non-loopback address without a token')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No log line per request on stderr')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No log line per request on stderr')
            [CompletionResult]::new('--cluster-init', '--cluster-init', [CompletionResultType]::ParameterName, 'Make this node the first of a new cluster (a file with data brings it in). Ignored on a file that is already a member')
            [CompletionResult]::new('--learner', '--learner', [CompletionResultType]::ParameterName, 'Stay a non-voting learner after joining')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;cluster' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make a learner a voter')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a node from the cluster (it stops serving and exits)')
            [CompletionResult]::new('transfer-leader', 'transfer-leader', [CompletionResultType]::ParameterValue, 'Hand leadership to a voter')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kvr;cluster;status' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the JSON of GET /v1/cluster instead of the table')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;cluster;promote' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;cluster;remove' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;cluster;transfer-leader' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;cluster;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make a learner a voter')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a node from the cluster (it stops serving and exits)')
            [CompletionResult]::new('transfer-leader', 'transfer-leader', [CompletionResultType]::ParameterValue, 'Hand leadership to a voter')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kvr;cluster;help;status' {
            break
        }
        'kvr;cluster;help;promote' {
            break
        }
        'kvr;cluster;help;remove' {
            break
        }
        'kvr;cluster;help;transfer-leader' {
            break
        }
        'kvr;cluster;help;help' {
            break
        }
        'kvr;openapi' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;completions' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;help' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Write a key''s value to stdout, byte for byte')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically')
            [CompletionResult]::new('range', 'range', [CompletionResultType]::ParameterValue, 'Print keys in [START, END) as JSON lines, from one consistent snapshot')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server''s batch limits, else exit 2 with nothing written; see --chunk-size)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Print {"keys":…,"revision":…,"file_bytes":…}')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)')
            [CompletionResult]::new('compact', 'compact', [CompletionResultType]::ParameterValue, 'Give the --db file''s free space back to the file system (no other process may hold it); prints the size before and after')
            [CompletionResult]::new('tui', 'tui', [CompletionResultType]::ParameterValue, 'Browse and edit the database in a full-screen terminal UI (? for keys)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the HTTP API: writes are group-committed through a write-ahead log')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored')
            [CompletionResult]::new('cluster', 'cluster', [CompletionResultType]::ParameterValue, 'A cluster''s members and leadership (needs --server: any member)')
            [CompletionResult]::new('openapi', 'openapi', [CompletionResultType]::ParameterValue, 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kvr;help;put' {
            break
        }
        'kvr;help;get' {
            break
        }
        'kvr;help;delete' {
            break
        }
        'kvr;help;range' {
            break
        }
        'kvr;help;watch' {
            break
        }
        'kvr;help;batch' {
            break
        }
        'kvr;help;stats' {
            break
        }
        'kvr;help;backup' {
            break
        }
        'kvr;help;check' {
            break
        }
        'kvr;help;compact' {
            break
        }
        'kvr;help;tui' {
            break
        }
        'kvr;help;serve' {
            break
        }
        'kvr;help;bench' {
            break
        }
        'kvr;help;cluster' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make a learner a voter')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a node from the cluster (it stops serving and exits)')
            [CompletionResult]::new('transfer-leader', 'transfer-leader', [CompletionResultType]::ParameterValue, 'Hand leadership to a voter')
            break
        }
        'kvr;help;cluster;status' {
            break
        }
        'kvr;help;cluster;promote' {
            break
        }
        'kvr;help;cluster;remove' {
            break
        }
        'kvr;help;cluster;transfer-leader' {
            break
        }
        'kvr;help;openapi' {
            break
        }
        'kvr;help;completions' {
            break
        }
        'kvr;help;help' {
            break
        }
        'kvr;bench' {
            [CompletionResult]::new('--workload', '--workload', [CompletionResultType]::ParameterName, 'What each request does')
            [CompletionResult]::new('--clients', '--clients', [CompletionResultType]::ParameterName, 'Concurrent clients (connections)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Run this long [default: 10 s unless --requests is given]')
            [CompletionResult]::new('--requests', '--requests', [CompletionResultType]::ParameterName, 'Stop after this many requests in all')
            [CompletionResult]::new('--key-size', '--key-size', [CompletionResultType]::ParameterName, 'Key length in bytes (random keys under `kvr-bench/`)')
            [CompletionResult]::new('--value-size', '--value-size', [CompletionResultType]::ParameterName, 'Value length in bytes')
            [CompletionResult]::new('--keyspace', '--keyspace', [CompletionResultType]::ParameterName, 'Number of distinct keys the workload draws from (reads too: prefill them first, in this run or an earlier one)')
            [CompletionResult]::new('--prefill', '--prefill', [CompletionResultType]::ParameterName, 'Keys to write (`kvr-bench/` 0..N) before measuring')
            [CompletionResult]::new('--read-ratio', '--read-ratio', [CompletionResultType]::ParameterName, 'Share of reads in the mixed workload')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Operations per request of the batch workload')
            [CompletionResult]::new('--range-size', '--range-size', [CompletionResultType]::ParameterName, 'Keys per request of the range workload')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file to measure (default: a temporary file, removed afterwards)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token: the one to send with --server, or the one `serve` requires')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from FILE (trailing newline removed)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system''s')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --server: the longest wait for a request (for streams: the longest time without progress)')
            [CompletionResult]::new('--consistency', '--consistency', [CompletionResultType]::ParameterName, 'With --server on a cluster: `stale` reads answer from the node''s own replica (possibly behind, never torn) instead of being linearizable')
            [CompletionResult]::new('--no-backoff', '--no-backoff', [CompletionResultType]::ParameterName, 'Retry at once after a 503 instead of waiting the server''s Retry-After (1 s), as a well-behaved client would')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
