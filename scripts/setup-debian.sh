#!/usr/bin/env bash
# Installs the system packages that drplan's tests and demo use on Debian 12:
# the PostgreSQL 15 server and client programs (/usr/lib/postgresql/15/bin) and zstd.
# Does nothing when they are already there.
set -euo pipefail

pg_bin=/usr/lib/postgresql/15/bin
if [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/psql" ] && command -v zstd >/dev/null; then
  echo "setup-debian: PostgreSQL 15 and zstd are already installed"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo)
fi

# drplan starts its own throwaway clusters on free ports, so the system-wide
# "main" cluster that the Debian package would create is not needed. This
# drop-in is read by postgresql-common (version 248 in Debian 12) through the
# include_dir line of its createcluster.conf.
"${as_root[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo 'create_main_cluster = false' | "${as_root[@]}" tee /etc/postgresql-common/createcluster.d/drplan.conf >/dev/null

# sudo resets the environment, so the variable is passed through env.
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 zstd

"$pg_bin/initdb" --version
zstd --version
