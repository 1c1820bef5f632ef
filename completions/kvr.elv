
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
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand put 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
            cand get 'Write a key''s value to stdout, byte for byte'
            cand delete 'Remove a key (exit 1 if it does not exist)'
            cand range 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
            cand batch 'Apply JSON lines atomically: all of them or none'
            cand stats 'Print {"keys":…,"revision":…,"file_bytes":…}'
            cand tui 'Browse and edit the database in a full-screen terminal UI (? for keys)'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'kvr;put'= {
            cand --if-revision 'Write only if the key''s current revision is N (0: only if absent)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand --json 'Print {"revision":N}'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;get'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand --json 'Print the key''s JSON line (key, value, revision) instead'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;delete'= {
            cand --if-revision 'Delete only if the key''s current revision is N (N > 0)'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand --json 'Print {"revision":N}'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;range'= {
            cand --prefix 'Only keys starting with P (intersected with START/END)'
            cand --limit 'At most N lines'
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand --reverse 'The same keys, in descending order'
            cand --keys-only 'Print only the keys'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;batch'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand --json 'Print {"applied":n,"revision":N} on stdout'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;stats'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;tui'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;completions'= {
            cand --db 'The database file'
            cand --lock-timeout 'Wait up to SECS for another process to release the database file'
            cand --cache-mib 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'kvr;help'= {
            cand put 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)'
            cand get 'Write a key''s value to stdout, byte for byte'
            cand delete 'Remove a key (exit 1 if it does not exist)'
            cand range 'Print keys in [START, END) as JSON lines, from one consistent snapshot'
            cand batch 'Apply JSON lines atomically: all of them or none'
            cand stats 'Print {"keys":…,"revision":…,"file_bytes":…}'
            cand tui 'Browse and edit the database in a full-screen terminal UI (? for keys)'
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
        &'kvr;help;batch'= {
        }
        &'kvr;help;stats'= {
        }
        &'kvr;help;tui'= {
        }
        &'kvr;help;completions'= {
        }
        &'kvr;help;help'= {
        }
    ]
    $completions[$command]
}
