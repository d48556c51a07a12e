# Sourced by scripts/demo and scripts/test: create/update .venv with the project installed.
#   ensure_venv [extras]    e.g. ensure_venv test
ensure_venv() {
    local extras=${1:-}
    local spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        "${PYTHON:-python3}" -m venv .venv
    fi
    local stamp=".venv/.iarms-installed${extras:+-$extras}"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing iarms-node${extras:+ with $extras extras} into .venv"
        local log=.venv/pip-install.log
        if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
               .venv/bin/python -m pip install --quiet -e "$spec"; } >"$log" 2>&1; then
            cat "$log"
            echo "!! installing iarms-node failed (log above, also in $log)" >&2
            return 1
        fi
        touch "$stamp"
    fi
    # The project is installed editable: compile it as an installed copy would be, so that
    # each command need not (PYTHONDONTWRITEBYTECODE, if set, would keep it from saving them).
    .venv/bin/python -m compileall -q -j 0 node admin_ui >/dev/null
}
