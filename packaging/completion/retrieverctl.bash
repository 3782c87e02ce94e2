# bash completion for retrieverctl                      -*- shell-script -*-
# Installed as share/bash-completion/completions/retrieverctl.
#
# The commands and each command's options are listed here, statically:
# tests/packaging/test_docs.py fails when 'retrieverctl COMMAND --help'
# prints a long option that is missing below (and in retrieverctl(1)).
# Job ids (watch, cancel, status) come from 'retrieverctl list --json' at
# completion time, through the --socket given on the line, if any.

_retrieverctl_opts() {
    case $1 in
    # cat takes download's options but for those about files, progress
    # and JSON (client/cli.c, cat_refused): the shared ones once.
    download)
        echo $(_retrieverctl_opts fetch) --detach -o --output -d --dir -O --remote-name \
            -i --input-file --force --no-clobber --copy --link --digest \
            --no-digest --json --no-progress ;;
    cat) _retrieverctl_opts fetch ;;
    fetch)
        echo --local --socket --no-autostart -x --proxy --limit-rate \
            -u --user -c --connections --header --netrc --netrc-file \
            --chunk-size --http2 --retries --retry-refused --connect-timeout \
            --stall-timeout --cacert --cacert-only --insecure --endpoint-url --region \
            --s3-path-style --no-sign-request --state-dir \
            --cache-dir --cache-quota --no-state --sha256 -q --quiet -h --help ;;
    status) echo --socket --json --no-autostart -h --help ;;
    list) echo --socket --json -a --all --state -h --help ;;
    watch | cancel | stats | version) echo --socket --json -h --help ;;
    cache) echo --local --socket --state-dir --cache-dir --json -h --help ;;
    ping) echo --socket -h --help ;;
    '') echo -h --help -V --version --socket ;;
    esac
}

# The caller's job ids, one a line; nothing when no daemon answers. Never
# starts a daemon (list does not autostart).
_retrieverctl_jobs() {
    local sock=$1 all=$2 prog=${COMP_WORDS[0]}
    local -a args=(list --json)
    [[ -n $all ]] && args+=(--all)
    [[ -n $sock ]] && args+=(--socket "$sock")
    # The program as typed (a build tree's, say), else the one on $PATH.
    command -v -- "$prog" >/dev/null 2>&1 || prog=retrieverctl
    "$prog" "${args[@]}" 2>/dev/null |
        sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p'
}

_retrieverctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="download cat status list watch cancel cache stats ping version help"
    local cmd="" action="" sock="" i w
    # The command is the first word that is not an option (or --socket's
    # value); for cache, the action is the next one.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --socket) ((i++)); sock=${COMP_WORDS[i]}; continue ;;
        --socket=*) sock=${w#--socket=}; continue ;;
        -*) continue ;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ $cmd == cache && -z $action ]]; then
            action=$w
        fi
    done

    COMPREPLY=()
    # Values of options. File names are read a line each (they may hold
    # blanks) and shown as file names (a / after a directory).
    case $prev in
    -o | --output | --header | --netrc-file | --cacert | --cacert-only | --socket)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    -d | --dir | --state-dir | --cache-dir)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    --state)
        COMPREPLY=($(compgen -W "queued running done failed cancelled" -- "$cur"))
        return ;;
    --http2)
        COMPREPLY=($(compgen -W "auto never always" -- "$cur"))
        return ;;
    -c | --connections | --chunk-size | --retries | --retry-refused | \
        --connect-timeout | --stall-timeout | --cache-quota | --sha256)
        return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_retrieverctl_opts "$cmd")" -- "$cur"))
        return
    fi
    case $cmd in
    '') COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
    help)
        [[ $prev == help ]] &&
            COMPREPLY=($(compgen -W "$commands exit-codes" -- "$cur")) ;;
    cache)
        [[ -z $action ]] &&
            COMPREPLY=($(compgen -W "ls rm clear verify" -- "$cur")) ;;
    watch | cancel)
        COMPREPLY=($(compgen -W "$(_retrieverctl_jobs "$sock" "")" -- "$cur")) ;;
    status)
        COMPREPLY=($(compgen -W "$(_retrieverctl_jobs "$sock" all)" -- "$cur")) ;;
    esac
}
complete -F _retrieverctl retrieverctl
