# Sourced by .ci/setup and .ci/run: is a PostgreSQL answering, and start a throwaway cluster when none is.
# The tests use the server at ORCHESTRATOR_TEST_POSTGRES_URL (trust auth, database `test`); .ci/run sets it.
# It looks on 127.0.0.1:${ORCHESTRATOR_CI_POSTGRES_PORT:-5432}: point that at a port where nothing answers
# to take the throwaway path on a machine that has a server.

# shellcheck source=.ci/at_exit.sh
. "$(dirname "${BASH_SOURCE[0]}")/at_exit.sh"

postgres_port() {
  echo "${ORCHESTRATOR_CI_POSTGRES_PORT:-5432}"
}

postgres_answers() {  # HOST PORT: true when a PostgreSQL there answers an SSLRequest (with S or N)
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && printf '\x00\x00\x00\x08\x04\xd2\x16\x2f' >&3 \
    && IFS= read -r -n1 reply <&3 && [[ \$reply == [SN] ]]" 2>/dev/null
}

postgres_usable() {  # URL: true when the tests can use it as they will (connect without a password, SELECT)
  timeout 10 .venv/bin/python -c 'import asyncio, asyncpg, sys
async def main(url):
    connection = await asyncpg.connect(url, timeout=5)
    await connection.fetchval("SELECT 1")
    await connection.close()
asyncio.run(main(sys.argv[1]))' "$1" 2>/dev/null
}

postgres_bin() {  # the folder holding initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/N/bin
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  local dir
  dir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

start_throwaway_postgres() {  # when nothing answers: initdb into a temp folder, pg_ctl on a free port
  if [ -n "${ORCHESTRATOR_TEST_POSTGRES_URL:-}" ]; then
    return 0
  fi
  local port
  port=$(postgres_port)
  # A server that answers but asks for a password or lacks `test` (Debian's own cluster, fresh from apt) is
  # left alone: the tests get a throwaway one beside it.
  if postgres_answers 127.0.0.1 "$port" && postgres_usable "postgresql://postgres@127.0.0.1:$port/test"; then
    export ORCHESTRATOR_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/test"
    return 0
  fi
  local bin
  if ! bin=$(postgres_bin); then
    echo "run: no usable PostgreSQL on 127.0.0.1:$port and no initdb to start one (.ci/setup installs" \
      "postgresql)" >&2
    return 1
  fi
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  THROWAWAY_POSTGRES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchestrator-postgres.XXXXXX")
  # initdb and pg_ctl refuse to run as root: as root, the cluster belongs to Debian's postgres user (or nobody).
  THROWAWAY_POSTGRES_AS=()
  if [ "$(id -u)" -eq 0 ]; then
    local owner=postgres
    id -u "$owner" >/dev/null 2>&1 || owner=nobody
    chown "$owner" "$THROWAWAY_POSTGRES_DIR"
    THROWAWAY_POSTGRES_AS=(runuser -u "$owner" --)
  fi
  local data="$THROWAWAY_POSTGRES_DIR/data" log="$THROWAWAY_POSTGRES_DIR/server.log"
  if ! "${THROWAWAY_POSTGRES_AS[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
    >"$THROWAWAY_POSTGRES_DIR/initdb.log" 2>&1; then
    cat "$THROWAWAY_POSTGRES_DIR/initdb.log" >&2
    return 1
  fi
  # The socket goes in the temp folder too (the default one may not exist or not be ours); fsync off: throwaway.
  if ! "${THROWAWAY_POSTGRES_AS[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $THROWAWAY_POSTGRES_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
    cat "$log" >&2
    return 1
  fi
  THROWAWAY_POSTGRES_BIN=$bin
  at_exit '"${THROWAWAY_POSTGRES_AS[@]}" "$THROWAWAY_POSTGRES_BIN/pg_ctl" -D "$THROWAWAY_POSTGRES_DIR/data" \
    -m immediate stop >/dev/null 2>&1; rm -rf "$THROWAWAY_POSTGRES_DIR"'
  # The database through the project's own driver: a machine may have initdb on PATH but no createdb.
  .venv/bin/python -c 'import asyncio, asyncpg, sys
async def main(url):
    connection = await asyncpg.connect(url)
    await connection.execute("CREATE DATABASE test")
    await connection.close()
asyncio.run(main(sys.argv[1]))' "postgresql://postgres@127.0.0.1:$port/postgres"
  export ORCHESTRATOR_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/test"
  echo "run: no usable PostgreSQL on 127.0.0.1:$(postgres_port); started a throwaway one on port $port" >&2
}
