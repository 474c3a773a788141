# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_abuse_mailer_global_optspecs
    string join \n config= q/quiet v/verbose h/help V/version
end

function __fish_abuse_mailer_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_abuse_mailer_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_abuse_mailer_using_subcommand
    set -l cmd (__fish_abuse_mailer_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -s V -l version -d 'Print version'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "run" -d 'Read new log lines, report new attackers to their providers, record what was sent'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "preview" -d 'Print the messages a run would send now, changing nothing'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "history" -d 'List the reports in the ledger'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "show" -d 'Print the exact message of a report, as it was sent'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "check" -d 'Check the configuration and everything it names'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "reread" -d 'Read a source again on the next run, rotated history included, after a wrong prefix say (the ledger keeps reports unique: nothing is sent twice; a packet counted before is not counted again)'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "contacts" -d 'List the abuse contacts discovery found: address, where it came from, network, age'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "firewall" -d 'Print firewall rules that block and log a provider\'s ranges'
complete -c abuse-mailer -n "__fish_abuse_mailer_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -l provider -d 'Report to this provider only (all sources are still read)' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -l since -d 'Pass over packets logged longer ago than this (e.g. 2h, 3d): skip old history' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -l dry-run -d 'Print the messages that would be sent and change nothing (same as `preview`)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -l json -d 'Print the reports as one JSON object on stdout (run: those it made this run)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand run" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -l provider -d 'Report to this provider only (all sources are still read)' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -l since -d 'Pass over packets logged longer ago than this (e.g. 2h, 3d): skip old history' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -l json -d 'Print the reports as one JSON object on stdout (run: those it made this run)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand preview" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -l ip -d 'Only reports that list this IP' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -l provider -d 'Only reports to this provider' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -l json -d 'Print a JSON array'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -l refresh -d 'First ask remote intakes (the AWS Abuse Signal API) how each unfinished report stands'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand history" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand show" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand show" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand show" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand show" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -l smtp -d 'Also connect to the SMTP server (EHLO, STARTTLS, AUTH) without sending'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -l aws -d 'Also make a harmless signed call to the AWS Abuse Signal API (lists one report)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand check" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -l source -d 'The source\'s `path` as configured, one file of a glob source, or `journald`' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -l since -d 'Read again from the first packet logged this long ago (e.g. 7d), not from the oldest rotated file' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand reread" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -l ip -d 'Only those whose network holds this IP' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -l json -d 'Print a JSON array'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand contacts" -s h -l help -d 'Print help'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -l provider -d 'The provider whose ranges to block' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -l format -d 'Rule syntax' -r -f -a "iptables\t'iptables-restore input for the IPv4 ranges'
ip6tables\t'ip6tables-restore input for the IPv6 ranges'
nft\t''
ipset\t''"
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -l ports -d 'Block only these destination ports (e.g. 80,443), so other traffic still flows' -r
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -l config -d 'Configuration file [default: $ABUSE_MAILER_CONFIG, else /etc/abuse-mailer/config.toml]' -r -F
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -s q -l quiet -d 'Say less: only errors (the run summary line is not printed)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -s v -l verbose -d 'Say more: what was read from each source and why'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand firewall" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "run" -d 'Read new log lines, report new attackers to their providers, record what was sent'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "preview" -d 'Print the messages a run would send now, changing nothing'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "history" -d 'List the reports in the ledger'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "show" -d 'Print the exact message of a report, as it was sent'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "check" -d 'Check the configuration and everything it names'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "reread" -d 'Read a source again on the next run, rotated history included, after a wrong prefix say (the ledger keeps reports unique: nothing is sent twice; a packet counted before is not counted again)'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "contacts" -d 'List the abuse contacts discovery found: address, where it came from, network, age'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "firewall" -d 'Print firewall rules that block and log a provider\'s ranges'
complete -c abuse-mailer -n "__fish_abuse_mailer_using_subcommand help; and not __fish_seen_subcommand_from run preview history show check reread contacts firewall help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
