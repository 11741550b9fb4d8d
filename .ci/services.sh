#!/usr/bin/env bash
# services.sh installs and starts the servers the sink tests talk to: Redis
# (connectors/redissink) and PostgreSQL (connectors/postgres), from Debian's
# packages, on a machine without systemd, as root. It is idempotent: a server
# that already answers is left alone, a role or database that exists is kept.
#
# Source it to get the variables in the calling shell:
#
#	. .ci/services.sh
#
# or run it and evaluate what it prints:
#
#	eval "$(bash .ci/services.sh)"
#
# Either way it sets
#
#	TESSERA_TEST_REDIS=127.0.0.1:6379
#	TESSERA_TEST_POSTGRES=postgres://tessera:tessera@127.0.0.1:5432/tessera_test?sslmode=disable
#
# Progress goes to stderr; when run, stdout carries only the export lines.

# The work runs in a child bash with errexit. (Run as a function, it would
# lose errexit wherever the caller tests its status.)
if [[ "${TESSERA_SERVICES_WORKER:-}" == 1 ]]; then
	set -euo pipefail
	log() { echo "services: $*" >&2; }
	# as_postgres runs a command as the postgres user from a directory it
	# can read (the caller's may not be).
	as_postgres() { (cd / && runuser -u postgres -- "$@"); }

	missing=()
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v redis-cli >/dev/null || missing+=(redis-tools)
	if ! command -v pg_ctlcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
		missing+=(postgresql)
	fi
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		apt-get update -qq >&2
		# The packages' maintainer scripts try to start the servers; without
		# an init system that may fail harmlessly: they are started below.
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >&2
	fi

	# Redis: daemonized, loopback only, nothing persisted.
	if [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; then
		log "redis already answers on 127.0.0.1:6379"
	else
		log "starting redis-server on 127.0.0.1:6379"
		mkdir -p /var/lib/tessera-test-redis
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
			--dir /var/lib/tessera-test-redis --save '' --appendonly no \
			--logfile /var/log/tessera-test-redis.log
		for _ in $(seq 50); do
			[[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]] && break
			sleep 0.1
		done
		[[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]] || {
			log "redis did not answer; its log:"
			tail -n 20 /var/log/tessera-test-redis.log >&2 || true
			exit 1
		}
	fi

	# PostgreSQL: the cluster on port 5432, created when there is none
	# (the package creates "main" unless configured not to).
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		read -r ver name < <(pg_lsclusters -h | awk '$3 == 5432 { print $1, $2; exit }') || true
		if [[ -z "${ver:-}" ]]; then
			ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
			name=main
			log "creating cluster $ver/$name on port 5432"
			pg_createcluster "$ver" "$name" --port 5432 >&2
		fi
		# The socket directory lives on /run, which a restart empties.
		install -d -o postgres -g postgres -m 2775 /var/run/postgresql
		# Debian's default configuration listens on localhost and takes
		# passwords (scram-sha-256) from 127.0.0.1. A server killed a
		# moment ago may still hold its socket's lock file: try a few
		# times.
		log "starting postgresql cluster $ver/$name"
		for _ in 1 2 3; do
			pg_ctlcluster "$ver" "$name" start >&2 && break
			sleep 1
		done
		for _ in $(seq 100); do
			pg_isready -q -h 127.0.0.1 -p 5432 && break
			sleep 0.1
		done
		pg_isready -q -h 127.0.0.1 -p 5432 || {
			log "postgresql did not answer; its log:"
			tail -n 20 "/var/log/postgresql/postgresql-$ver-$name.log" >&2 || true
			exit 1
		}
	else
		log "postgresql already answers on 127.0.0.1:5432"
	fi
	as_postgres psql -q -v ON_ERROR_STOP=1 -p 5432 >&2 <<-'SQL'
		SELECT 'CREATE ROLE tessera LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tessera')
		\gexec
		ALTER ROLE tessera LOGIN PASSWORD 'tessera';
		SELECT 'CREATE DATABASE tessera_test OWNER tessera' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tessera_test')
		\gexec
	SQL
	log "ready"
	exit 0
fi

if TESSERA_SERVICES_WORKER=1 bash "${BASH_SOURCE[0]}"; then
	export TESSERA_TEST_REDIS=127.0.0.1:6379
	export TESSERA_TEST_POSTGRES='postgres://tessera:tessera@127.0.0.1:5432/tessera_test?sslmode=disable'
	if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
		echo "export TESSERA_TEST_REDIS='$TESSERA_TEST_REDIS'"
		echo "export TESSERA_TEST_POSTGRES='$TESSERA_TEST_POSTGRES'"
	fi
else
	echo "services: failed" >&2
	# return when sourced, exit when run.
	return 1 2>/dev/null || exit 1
fi
