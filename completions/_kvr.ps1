
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
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Write a key''s value to stdout, byte for byte')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist)')
            [CompletionResult]::new('range', 'range', [CompletionResultType]::ParameterValue, 'Print keys in [START, END) as JSON lines, from one consistent snapshot')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Apply JSON lines atomically: all of them or none')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Print {"keys":…,"revision":…,"file_bytes":…}')
            [CompletionResult]::new('tui', 'tui', [CompletionResultType]::ParameterValue, 'Browse and edit the database in a full-screen terminal UI (? for keys)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'kvr;put' {
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Write only if the key''s current revision is N (0: only if absent)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N}')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;get' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the key''s JSON line (key, value, revision) instead')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;delete' {
            [CompletionResult]::new('--if-revision', '--if-revision', [CompletionResultType]::ParameterName, 'Delete only if the key''s current revision is N (N > 0)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"revision":N}')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;range' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Only keys starting with P (intersected with START/END)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most N lines')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('--reverse', '--reverse', [CompletionResultType]::ParameterName, 'The same keys, in descending order')
            [CompletionResult]::new('--keys-only', '--keys-only', [CompletionResultType]::ParameterName, 'Print only the keys')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;batch' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print {"applied":n,"revision":N} on stdout')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;stats' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;tui' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;completions' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database file')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'Wait up to SECS for another process to release the database file')
            [CompletionResult]::new('--cache-mib', '--cache-mib', [CompletionResultType]::ParameterName, 'Page cache of the storage engine in MiB, the main bound on memory [default: an eighth of available memory, 16 to 1024]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'kvr;help' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Store a value (from VALUE, or stdin to EOF when VALUE is absent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Write a key''s value to stdout, byte for byte')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Remove a key (exit 1 if it does not exist)')
            [CompletionResult]::new('range', 'range', [CompletionResultType]::ParameterValue, 'Print keys in [START, END) as JSON lines, from one consistent snapshot')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Apply JSON lines atomically: all of them or none')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Print {"keys":…,"revision":…,"file_bytes":…}')
            [CompletionResult]::new('tui', 'tui', [CompletionResultType]::ParameterValue, 'Browse and edit the database in a full-screen terminal UI (? for keys)')
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
        'kvr;help;batch' {
            break
        }
        'kvr;help;stats' {
            break
        }
        'kvr;help;tui' {
            break
        }
        'kvr;help;completions' {
            break
        }
        'kvr;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
