#!/usr/bin/env bash
# check-contracts.sh - check every contract the services share, without Docker:
#   1. event schemas (schemas/events/*.json, JSON Schema 2020-12) compile (ajv, strict);
#      every `examples` entry validates; every schemas/events/invalid/<type>-*.json fails;
#      every event type has counter-examples and appears in the topic map (docs/events.md);
#   2. schemas/openapi.yaml (OpenAPI 3.1) passes `redocly lint` (redocly.yaml, strict);
#   3. docker-compose.yml passes `docker-compose config -q` (Debian's Compose 1.29);
#   4. deploy/k8s/*.yaml parse as YAML and look like Kubernetes objects; the kustomization
#      builds (when kubectl is installed); the nginx config copy matches deploy/nginx.
# The npm tools are pinned in tools/contracts/package-lock.json and installed with
# `npm ci` into tools/contracts/node_modules (once; skipped while the lock is unchanged).
# Exits non-zero after reporting every failure.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

TOOLS=tools/contracts
BIN=$TOOLS/node_modules/.bin
EVENTS=schemas/events
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
failures=()

say() { printf 'contracts: %s\n' "$*"; }
fail() {
	printf 'contracts: FAIL: %s\n' "$*" >&2
	failures+=("$1")
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
elapsed() { # ms since $1 as seconds with one decimal
	local d=$(($(now_ms) - $1))
	printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100))
}
t0=$(now_ms)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-contracts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- 0. tools ---------------------------------------------------------------------------
command -v node >/dev/null || { echo "contracts: node is missing (scripts/deps.sh)" >&2; exit 2; }
stamp=$TOOLS/node_modules/.cairn-lock.sha256
want=$(sha256sum "$TOOLS/package-lock.json" | cut -d' ' -f1)
if [[ ! -x $BIN/ajv || ! -x $BIN/redocly || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
	say "installing pinned tools: npm ci --prefix $TOOLS"
	s=$(now_ms)
	if ! npm ci --prefix "$TOOLS" --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1; then
		cat "$tmp/npm.log" >&2
		echo "contracts: npm ci failed (is the npm registry reachable?)" >&2
		exit 2
	fi
	echo "$want" >"$stamp"
	say "tools installed in $(elapsed "$s")"
fi

# ---- 1. event schemas -------------------------------------------------------------------
s=$(now_ms)
mapfile -t schemas < <(find "$EVENTS" -maxdepth 1 -name '*.json' | sort)
((${#schemas[@]})) || fail "no schemas in $EVENTS"

# strictRequired is off: `required` inside if/then refers to properties declared above.
AJV_OPTS=(--spec=draft2020 -c ajv-formats --strict=true --strict-required=false
	--allow-union-types --all-errors)
compiled="ajv compile ok"
if ! "$BIN/ajv" compile "${AJV_OPTS[@]}" -s "$EVENTS/*.json" >"$tmp/compile.log" 2>&1; then
	grep -v ' is valid$' "$tmp/compile.log" >&2 || true
	compiled="ajv compile FAILED"
	fail "event schemas do not compile (draft 2020-12, strict)"
fi

# Examples must validate, counter-examples must fail (one node process, same Ajv options).
if node "$TOOLS/check-events.js" "$EVENTS" >"$tmp/events.log" 2>&1; then
	summary=$(tail -n1 "$tmp/events.log")
else
	sed '$d' "$tmp/events.log" >&2
	fail "event examples / counter-examples (see above)"
	summary=$(tail -n1 "$tmp/events.log")
fi
for f in "${schemas[@]}"; do
	type=$(basename "$f" .json)
	if [[ $type != cloudevent-headers ]] && ! grep -q "\`$type\`" docs/events.md 2>/dev/null; then
		fail "$type: missing from the topic map in docs/events.md"
	fi
done
say "event schemas: $compiled; $summary ($(elapsed "$s"))"

# ---- 2. OpenAPI -------------------------------------------------------------------------
s=$(now_ms)
if "$BIN/redocly" lint --config redocly.yaml --format=stylish schemas/openapi.yaml \
	>"$tmp/redocly.log" 2>&1; then
	say "openapi: redocly lint clean ($(elapsed "$s"))"
else
	grep -v '[║╔╚]' "$tmp/redocly.log" >&2
	fail "schemas/openapi.yaml: redocly lint"
fi

# ---- 3. docker-compose.yml --------------------------------------------------------------
s=$(now_ms)
if ! command -v docker-compose >/dev/null; then
	fail "docker-compose not installed (scripts/deps.sh installs Debian's)"
else
	# Required variables get placeholders: this checks the file, not a deployment.
	if CAIRN_DB_PASSWORD=check CAIRN_PG_SUPERUSER_PASSWORD=check docker-compose -f docker-compose.yml --project-directory . \
		config -q >"$tmp/compose.log" 2>&1; then
		say "compose: docker-compose config -q clean" \
			"($(docker-compose version --short 2>/dev/null), $(elapsed "$s"))"
	else
		cat "$tmp/compose.log" >&2
		fail "docker-compose.yml: docker-compose config -q"
	fi
fi

# ---- 4. Kubernetes manifests ------------------------------------------------------------
s=$(now_ms)
py=python3
$py -c 'import yaml' 2>/dev/null || py=/usr/bin/python3 # Debian's python3-yaml
if ! $py - deploy/k8s >"$tmp/k8s.log" 2>&1 <<'EOF'; then
import glob, os, sys, yaml
root = sys.argv[1]
bad = []
names = {}
for f in sorted(glob.glob(os.path.join(root, "*.yaml"))):
    try:
        docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    except yaml.YAMLError as e:
        bad.append(f"{f}: {e}")
        continue
    for d in docs:
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind"):
            bad.append(f"{f}: a document without apiVersion/kind")
            continue
        if d["kind"] == "Kustomization":
            for r in d.get("resources", []):
                if not os.path.exists(os.path.join(root, r)):
                    bad.append(f"{f}: resource {r} does not exist")
            for g in d.get("configMapGenerator", []):
                for fl in g.get("files", []):
                    p = fl.split("=", 1)[-1]
                    if not os.path.exists(os.path.join(root, p)):
                        bad.append(f"{f}: configMapGenerator file {p} does not exist")
            continue
        md = d.get("metadata") or {}
        if not md.get("name"):
            bad.append(f"{f}: {d['kind']} without metadata.name")
            continue
        names[(d["kind"], md["name"])] = d
        if d["kind"] != "Namespace" and md.get("namespace") != "cairn":
            bad.append(f"{f}: {d['kind']}/{md['name']} not in namespace cairn")
for (kind, name), d in names.items():
    if kind != "Deployment":
        continue
    spec = d["spec"]["template"]["spec"]
    for c in spec["containers"]:
        if not c.get("resources", {}).get("requests"):
            bad.append(f"Deployment/{name}: container {c['name']} has no resource requests")
        if name != "nginx":
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/livez":
                bad.append(f"Deployment/{name}: liveness probe must GET /livez")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                bad.append(f"Deployment/{name}: readiness probe must GET /readyz")
    if ("Service", name) not in names:
        bad.append(f"Deployment/{name}: no Service of the same name")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	cat "$tmp/k8s.log" >&2
	fail "deploy/k8s: manifests"
else
	msg="YAML and structure ok"
	if command -v kubectl >/dev/null; then
		if kubectl kustomize deploy/k8s >"$tmp/kustomize.out" 2>"$tmp/kustomize.log"; then
			msg+=", kustomize builds $(grep -c '^kind:' "$tmp/kustomize.out") objects"
		else
			cat "$tmp/kustomize.log" >&2
			fail "deploy/k8s: kubectl kustomize"
		fi
	fi
	say "k8s: $msg ($(elapsed "$s"))"
fi
# The k8s nginx ConfigMap is a copy of the compose config (same upstream names).
if [[ -f deploy/nginx/compose.conf ]] &&
	! cmp -s deploy/nginx/compose.conf deploy/k8s/nginx/default.conf; then
	fail "deploy/k8s/nginx/default.conf differs from deploy/nginx/compose.conf" \
		"(cp deploy/nginx/compose.conf deploy/k8s/nginx/default.conf)"
fi

# The six topics are created the same way everywhere.
for t in cairn.identity cairn.jobs cairn.backup cairn.restore cairn.repository cairn.dlq; do
	for f in docker-compose.yml deploy/k8s/kafka-topics-job.yaml docs/events.md; do
		grep -q -- "$t" "$f" || fail "$f does not mention topic $t"
	done
done

if ((${#failures[@]})); then
	echo "contracts: ${#failures[@]} check(s) failed:" >&2
	printf '  - %s\n' "${failures[@]}" >&2
	exit 1
fi
say "all contract checks passed in $(elapsed "$t0")"
