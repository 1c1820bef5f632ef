# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kvr_global_optspecs
    string join \n db= lock-timeout= cache-mib= server= token= token-file= cacert= timeout= consistency= h/help V/version
end

function __fish_kvr_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kvr_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kvr_using_subcommand
    set -l cmd (__fish_kvr_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kvr -n "__fish_kvr_needs_command" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_needs_command" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_needs_command" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_needs_command" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_needs_command" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_needs_command" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_needs_command" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_needs_command" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_needs_command" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kvr -n "__fish_kvr_needs_command" -s V -l version -d 'Print version'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "put" -d 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "get" -d 'Write a key\'s value to stdout, byte for byte'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "delete" -d 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "del" -d 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "rm" -d 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "range" -d 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "watch" -d 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "batch" -d 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server\'s batch limits, else exit 2 with nothing written; see --chunk-size)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "stats" -d 'Print {"keys":…,"revision":…,"file_bytes":…}'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "backup" -d 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "check" -d 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "compact" -d 'Give the --db file\'s free space back to the file system (no other process may hold it); prints the size before and after'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "tui" -d 'Browse and edit the database in a full-screen terminal UI (? for keys)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "serve" -d 'Serve the HTTP API: writes are group-committed through a write-ahead log'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "cluster" -d 'A cluster\'s members and leadership (needs --server: any member)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "openapi" -d 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "bench" -d 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored'
complete -c kvr -n "__fish_kvr_using_subcommand put" -l if-revision -d 'Write only if the key\'s current revision is N (0: only if absent)' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l ttl -d 'Expire the key this long after the write: seconds (90) or with a unit (30s, 5m, 2h, 1d), at most 10 years. Without it, any earlier expiry of the key is cleared' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l max-value-bytes -d 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server\'s limit applies' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand put" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand put" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand put" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand put" -l json -d 'Print {"revision":N}'
complete -c kvr -n "__fish_kvr_using_subcommand put" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand get" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand get" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand get" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand get" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand get" -l json -d 'Print the key\'s JSON line (key, value, revision) instead'
complete -c kvr -n "__fish_kvr_using_subcommand get" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l prefix -d 'Delete every key starting with P (\'\' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l range -d 'Delete every key in [START, END), atomically' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l if-revision -d 'Delete only if the key\'s current revision is N (N > 0)' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l json -d 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
complete -c kvr -n "__fish_kvr_using_subcommand delete" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand del" -l prefix -d 'Delete every key starting with P (\'\' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l range -d 'Delete every key in [START, END), atomically' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l if-revision -d 'Delete only if the key\'s current revision is N (N > 0)' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand del" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand del" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand del" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand del" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand del" -l json -d 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
complete -c kvr -n "__fish_kvr_using_subcommand del" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l prefix -d 'Delete every key starting with P (\'\' deletes every key), atomically, each delete taking a revision; exit 0 also when none matched' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l range -d 'Delete every key in [START, END), atomically' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l if-revision -d 'Delete only if the key\'s current revision is N (N > 0)' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand rm" -l json -d 'Print {"revision":N} ({"deleted":n,"revision":N} for --prefix and --range)'
complete -c kvr -n "__fish_kvr_using_subcommand rm" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l prefix -d 'Only keys starting with P (intersected with START/END)' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l limit -d 'At most N lines (N >= 1)' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand range" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand range" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand range" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand range" -l reverse -d 'The same keys, in descending order'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l keys-only -d 'Print only the keys'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l count -d 'Print only {"count":n}, the number of keys the other options select (over --server the values are not sent)'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l json -d 'Accepted for symmetry with the other commands: the output is JSON lines already'
complete -c kvr -n "__fish_kvr_using_subcommand range" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l prefix -d 'Only keys starting with P (intersected with START/END)' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l from-revision -d 'Start with the events from revision R on (those the server still keeps; older ones: exit 1); omitted: changes after the current one' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l keys-only -d 'Leave values out of put events'
complete -c kvr -n "__fish_kvr_using_subcommand watch" -l progress -d 'Print the progress lines too: {"progress_revision":R} means every change up to R was printed'
complete -c kvr -n "__fish_kvr_using_subcommand watch" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l chunk-size -d 'Apply the input in parts of N lines (blank lines do not count), each part atomic on its own (the input as a whole is then not): for inputs over a server\'s limits, e.g. `kvr range | kvr --server URL batch --chunk-size 10000`. A failing part stops the run; the parts before it stay applied' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l max-value-bytes -d 'With --db: the largest value accepted, in bytes [default: 16 MiB]. Raise it for data from a server with a larger `serve --max-value-bytes`. With --server the server\'s limit applies' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l json -d 'Print {"applied":n,"revision":N,"puts":p,"deletes":d} on stdout (the HTTP answer)'
complete -c kvr -n "__fish_kvr_using_subcommand batch" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l json -d 'Accepted for symmetry with the other commands: the output is JSON already'
complete -c kvr -n "__fish_kvr_using_subcommand stats" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l force -d 'Replace DEST if it exists'
complete -c kvr -n "__fish_kvr_using_subcommand backup" -l json -d 'Print {"revision":R,"keys":N,"bytes":B} (B: DEST\'s size)'
complete -c kvr -n "__fish_kvr_using_subcommand backup" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand check" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand check" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand check" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand check" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand check" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand check" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand check" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand check" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand check" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand check" -l json -d 'Print one JSON object: {"ok":true,"keys":N,"revision":R,"expired":E}, or {"ok":false,"problems":[{"where":…,"what":…},…]} (exit 3)'
complete -c kvr -n "__fish_kvr_using_subcommand check" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand compact" -l json -d 'Print {"before":B,"after":A}, the file\'s size in bytes'
complete -c kvr -n "__fish_kvr_using_subcommand compact" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand tui" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l listen -d 'Address to listen on (port 0: any free port; the first stdout line names it)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with the certificate chain in this PEM file (leaf first); needs --tls-key' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l tls-key -d 'The private key of --tls-cert, a PEM file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l max-value-bytes -d 'Largest value, in bytes (in cluster mode, --raft-listen, the default is 8388608: one request is one Raft entry)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l max-batch-ops -d 'Most operations in one batch request' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l max-batch-bytes -d 'Largest batch request body, in bytes (in cluster mode the default is 8388608: one request is one Raft entry). A batch is held several times over while applied: serve warns at start when one could exhaust its memory' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l max-body-mib -d 'Memory for request bodies being received or handled, server-wide, in MiB; beyond, 503 overloaded at once. Default: twice --memtable-mib; never less than one largest request' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l queue-size -d 'Writes that may wait for the writer; beyond, 503 overloaded at once' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l max-connections -d 'Open connections; beyond, new ones get 503 and are closed (but for /healthz, /readyz and /metrics, on a reserve of 8 more)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l header-timeout -d 'Seconds a client has to send a request\'s headers' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l idle-timeout -d 'Seconds a connection may make no progress before it is closed' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l memtable-mib -d 'Memory for writes not yet flushed into the database file, in MiB: past it writes wait for a flush (and get 503 when the queue is full). Default: an eighth of the cache, between 16 and 128. It also bounds the log replayed after a crash' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l history -d 'Watch history to keep, in revisions (0: none; watches then follow live changes only and cannot resume from an earlier revision)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l history-bytes -d 'Watch history to keep, in bytes of its events (each event\'s key and value plus 24 bytes): the oldest events go first when either bound is reached' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l workers -d 'Threads serving HTTP [default: one per CPU core; the group-commit writer and the flush have threads of their own]' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l raft-listen -d 'Turn cluster mode on: node-to-node traffic uses only this address (port 0: any free port; stdout names it after the listening line)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l join -d 'Ask a member (any of these public URLs) to add this node; it catches up as a learner and then votes' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l advertise-url -d 'The public URL others use for this node [default: the bound one]' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l advertise-raft -d 'The raft address others use for this node [default: the bound one]' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l cluster-token -d 'Shared secret of node-to-node traffic (mandatory unless every raft address is loopback)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l cluster-token-file -d 'Read the cluster token from this file (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l heartbeat-ms -d 'Leader heartbeat interval, in milliseconds' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l election-timeout-ms -d 'Election timeout range, in milliseconds (MIN at least 3 x heartbeat)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l allow-unauthenticated -d 'Allow a non-loopback address without a token'
complete -c kvr -n "__fish_kvr_using_subcommand serve" -s q -l quiet -d 'No log line per request on stderr'
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l cluster-init -d 'Make this node the first of a new cluster (a file with data brings it in). Ignored on a file that is already a member'
complete -c kvr -n "__fish_kvr_using_subcommand serve" -l learner -d 'Stay a non-voting learner after joining'
complete -c kvr -n "__fish_kvr_using_subcommand serve" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -f -a "status" -d 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -f -a "promote" -d 'Make a learner a voter'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -f -a "remove" -d 'Remove a node from the cluster (it stops serving and exits)'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -f -a "transfer-leader" -d 'Hand leadership to a voter'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and not __fish_seen_subcommand_from status promote remove transfer-leader help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -l json -d 'Print the JSON of GET /v1/cluster instead of the table'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from promote" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from transfer-leader" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "status" -d 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "promote" -d 'Make a learner a voter'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a node from the cluster (it stops serving and exits)'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "transfer-leader" -d 'Hand leadership to a voter'
complete -c kvr -n "__fish_kvr_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand openapi" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand completions" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "put" -d 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "get" -d 'Write a key\'s value to stdout, byte for byte'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "delete" -d 'Remove a key (exit 1 if it does not exist), or every key of a prefix or range at once (--prefix, --range), atomically'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "range" -d 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "watch" -d 'Print changes to keys in [START, END) as JSON lines until interrupted (needs --server). After a dropped connection or a restarted server it resumes where it stopped, through the --server list, never printing an event twice or skipping one'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "batch" -d 'Apply JSON lines atomically: all of them or none, however large (with --server: up to the server\'s batch limits, else exit 2 with nothing written; see --chunk-size)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "stats" -d 'Print {"keys":…,"revision":…,"file_bytes":…}'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "backup" -d 'Copy the database at one revision into a new, compacted database file (through --server while it serves, or from --db)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "check" -d 'Verify the --db file without changing it: storage integrity, every record, the counters, a leftover log (exit 3 on any problem)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "compact" -d 'Give the --db file\'s free space back to the file system (no other process may hold it); prints the size before and after'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "tui" -d 'Browse and edit the database in a full-screen terminal UI (? for keys)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "serve" -d 'Serve the HTTP API: writes are group-committed through a write-ahead log'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "bench" -d 'Load generator: ops/s and latency percentiles against --server URL or, with --db PATH (or a temporary file), the engine alone. Only flags on the command line count here: KVR_DB and KVR_SERVER are ignored'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "cluster" -d 'A cluster\'s members and leadership (needs --server: any member)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "openapi" -d 'Print the OpenAPI 3.1 document of the HTTP API, as `kvr serve` serves it at /v1/openapi.json (needs no database)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range watch batch stats backup check compact tui serve bench cluster openapi completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "status" -d 'The members, their roles and replication lag (a table; --json for the JSON of GET /v1/cluster)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "promote" -d 'Make a learner a voter'
complete -c kvr -n "__fish_kvr_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "remove" -d 'Remove a node from the cluster (it stops serving and exits)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "transfer-leader" -d 'Hand leadership to a voter'
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l workload -d 'What each request does' -r -f -a "put\t''
get\t''
range\t''
batch\t''
mixed\t''
healthz\t''"
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l clients -d 'Concurrent clients (connections)' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l duration -d 'Run this long [default: 10 s unless --requests is given]' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l requests -d 'Stop after this many requests in all' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l key-size -d 'Key length in bytes (random keys under `kvr-bench/`)' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l value-size -d 'Value length in bytes' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l keyspace -d 'Number of distinct keys the workload draws from (reads too: prefill them first, in this run or an earlier one)' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l prefill -d 'Keys to write (`kvr-bench/` 0..N) before measuring' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l read-ratio -d 'Share of reads in the mixed workload' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l batch-size -d 'Operations per request of the batch workload' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l range-size -d 'Keys per request of the range workload' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l db -d 'The database file to measure (default: a temporary file, removed afterwards)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024; to 4096 for serve]' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l server -d 'Run the command against a running `kvr serve` instead of a local file; a comma-separated list is tried in order (`serve` ignores KVR_SERVER)' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l token -d 'Bearer token: the one to send with --server, or the one `serve` requires' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l token-file -d 'Read the token from FILE (trailing newline removed)' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l cacert -d 'With an https:// --server: trust the certificate authorities in this PEM file as well as the system\'s' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l timeout -d 'With --server: the longest wait for a request (for streams: the longest time without progress)' -r
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l consistency -d 'With --server on a cluster: `stale` reads answer from the node\'s own replica (possibly behind, never torn) instead of being linearizable' -r -f -a "linearizable\t''
stale\t''"
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l no-backoff -d 'Retry at once after a 503 instead of waiting the server\'s Retry-After (1 s), as a well-behaved client would'
complete -c kvr -n "__fish_kvr_using_subcommand bench" -l json -d 'Print one JSON object'
complete -c kvr -n "__fish_kvr_using_subcommand bench" -s h -l help -d 'Print help'
