#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for drplan and runs the demo: installs
# PostgreSQL 15 and zstd when missing, installs the npm dependencies, builds,
# then backs up, verifies and restores the Chinook sample database.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-debian.sh
npm ci --no-audit --no-fund
npm run demo
