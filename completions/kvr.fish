# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kvr_global_optspecs
    string join \n db= lock-timeout= cache-mib= h/help V/version
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
complete -c kvr -n "__fish_kvr_needs_command" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kvr -n "__fish_kvr_needs_command" -s V -l version -d 'Print version'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "put" -d 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "get" -d 'Write a key\'s value to stdout, byte for byte'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "delete" -d 'Remove a key (exit 1 if it does not exist)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "range" -d 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "batch" -d 'Apply JSON lines atomically: all of them or none'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "stats" -d 'Print {"keys":…,"revision":…,"file_bytes":…}'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "tui" -d 'Browse and edit the database in a full-screen terminal UI (? for keys)'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c kvr -n "__fish_kvr_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kvr -n "__fish_kvr_using_subcommand put" -l if-revision -d 'Write only if the key\'s current revision is N (0: only if absent)' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand put" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand put" -l json -d 'Print {"revision":N}'
complete -c kvr -n "__fish_kvr_using_subcommand put" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand get" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand get" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand get" -l json -d 'Print the key\'s JSON line (key, value, revision) instead'
complete -c kvr -n "__fish_kvr_using_subcommand get" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l if-revision -d 'Delete only if the key\'s current revision is N (N > 0)' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand delete" -l json -d 'Print {"revision":N}'
complete -c kvr -n "__fish_kvr_using_subcommand delete" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l prefix -d 'Only keys starting with P (intersected with START/END)' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l limit -d 'At most N lines' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand range" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand range" -l reverse -d 'The same keys, in descending order'
complete -c kvr -n "__fish_kvr_using_subcommand range" -l keys-only -d 'Print only the keys'
complete -c kvr -n "__fish_kvr_using_subcommand range" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand batch" -l json -d 'Print {"applied":n,"revision":N} on stdout'
complete -c kvr -n "__fish_kvr_using_subcommand batch" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand stats" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand tui" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l db -d 'The database file' -r -F
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l lock-timeout -d 'Wait up to SECS for another process to release the database file' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -l cache-mib -d 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]' -r
complete -c kvr -n "__fish_kvr_using_subcommand completions" -s h -l help -d 'Print help'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "put" -d 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "get" -d 'Write a key\'s value to stdout, byte for byte'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "delete" -d 'Remove a key (exit 1 if it does not exist)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "range" -d 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "batch" -d 'Apply JSON lines atomically: all of them or none'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "stats" -d 'Print {"keys":…,"revision":…,"file_bytes":…}'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "tui" -d 'Browse and edit the database in a full-screen terminal UI (? for keys)'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c kvr -n "__fish_kvr_using_subcommand help; and not __fish_seen_subcommand_from put get delete range batch stats tui completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
