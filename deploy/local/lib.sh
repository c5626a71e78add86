# shellcheck shell=bash
# Shared by deploy/local/up and deploy/local/test: prerequisites, assembling the Apache Kafka broker
# from Maven Central, starting and stopping processes by id. Source it; do not run it.

BL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BL_STATE=${BLUELIGHT_STATE_DIR:-$BL_ROOT/.local}
BL_KAFKA_VERSION=${BLUELIGHT_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$BL_ROOT/deploy/local/kafka/pom.xml")}
BL_MIN_RUST=1.88
# The services' allocator (mimalloc) gives freed pages back at once rather than after 10 ms, and
# commits arena memory as it is used: about 20 to 30 MiB less peak RSS for the projector with a
# million-event backlog, at no measurable cost. Deployments elsewhere should set the same.
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:-0}
export MIMALLOC_ARENA_EAGER_COMMIT=${MIMALLOC_ARENA_EAGER_COMMIT:-0}

if [ -t 2 ]; then BL_B=$'\033[1m' BL_R=$'\033[1;31m' BL_0=$'\033[0m'; else BL_B= BL_R= BL_0=; fi
# Never fails: a message to a closed pipe (`up | tee` after Ctrl-C) must not abort a clean-up.
bl_say() { printf '%s[bluelight]%s %s\n' "$BL_B" "$BL_0" "$*" >&2 2>/dev/null || true; }
bl_die() { printf '%s[bluelight] error:%s %s\n' "$BL_R" "$BL_0" "$*" >&2; exit 1; }

# Installs what a fresh Debian/Ubuntu machine lacks (as root, through apt), or says what to install.
bl_prerequisites() {
  local missing=() pkgs=()
  command -v java >/dev/null || { missing+=(java); pkgs+=(openjdk-17-jdk-headless); }
  command -v mvn >/dev/null || { missing+=(mvn); pkgs+=(maven); }
  command -v cc >/dev/null || { missing+=(cc); pkgs+=(build-essential); }
  command -v make >/dev/null || { missing+=(make); pkgs+=(make); }
  command -v perl >/dev/null || { missing+=(perl); pkgs+=(perl); }
  command -v pkg-config >/dev/null || { missing+=(pkg-config); pkgs+=(pkg-config); }
  command -v python3 >/dev/null || { missing+=(python3); pkgs+=(python3 python3-venv); }
  command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null && { missing+=(python3-venv); pkgs+=(python3-venv); }
  command -v curl >/dev/null || { missing+=(curl); pkgs+=(curl); }
  [ -f /usr/include/openssl/ssl.h ] || { missing+=(openssl-headers); pkgs+=(libssl-dev); }
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      bl_say "installing ${missing[*]} (apt: ${pkgs[*]})"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
        || bl_die "apt-get could not install ${pkgs[*]}"
    else
      bl_die "missing ${missing[*]}; install the Debian packages ${pkgs[*]} (or your system's equivalents)"
    fi
  fi
  local java_major
  java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [ "${java_major:-0}" -ge 17 ] 2>/dev/null || bl_die "Apache Kafka 4.x needs Java 17 or newer; java here is ${java_major:-unknown}"
  command -v cargo >/dev/null || bl_die "Rust is missing: install it with rustup (https://rustup.rs), version $BL_MIN_RUST or newer"
  local rust
  rust=$(rustc --version | awk '{print $2}')
  printf '%s\n%s\n' "$BL_MIN_RUST" "${rust%%-*}" | sort -V -C || bl_die "Rust $rust is older than $BL_MIN_RUST; run rustup update"
}

# The headless browser the board's browser test drives (Debian's chromium and chromium-driver).
bl_browser_prerequisites() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bl_say "installing chromium and chromium-driver for the board's browser test (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2 \
      || bl_say "warning: apt-get could not install chromium chromium-driver; the board's browser test will fail"
  else
    # Only one test needs it: say so and let that test fail with the same message, not the suite.
    bl_say "warning: the board's browser test needs chromium and chromedriver; install the Debian packages chromium chromium-driver"
  fi
}

# Puts the broker's jars in $BL_KAFKA_LIBS (Maven downloads them once into ~/.m2).
bl_assemble_kafka() {
  # Jars live apart from broker state, so a throwaway state dir (tests) reuses them.
  BL_KAFKA_HOME="${BLUELIGHT_KAFKA_CACHE:-$BL_ROOT/.local/kafka}/$BL_KAFKA_VERSION"
  BL_KAFKA_LIBS="$BL_KAFKA_HOME/libs"
  [ -f "$BL_KAFKA_HOME/.assembled" ] && return 0
  bl_say "assembling Apache Kafka $BL_KAFKA_VERSION from Maven Central (first run only)"
  rm -rf "$BL_KAFKA_HOME"
  mkdir -p "$BL_KAFKA_LIBS"
  mvn -B -q -Dstyle.color=never -f "$BL_ROOT/deploy/local/kafka/pom.xml" \
      -Dkafka.version="$BL_KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$BL_KAFKA_LIBS" >&2 \
    || bl_die "Maven could not fetch Apache Kafka $BL_KAFKA_VERSION (see above); is Maven Central reachable?"
  [ -f "$BL_KAFKA_LIBS/kafka_2.13-$BL_KAFKA_VERSION.jar" ] || bl_die "kafka_2.13-$BL_KAFKA_VERSION.jar is missing after assembly"
  touch "$BL_KAFKA_HOME/.assembled"
}

# bl_kafka_cmd LOGDIR ARGS...: sets BL_CMD to a java command line on the broker's classpath.
bl_kafka_cmd() {
  local logs=$1; shift
  BL_CMD=(java -Xms128m "-Xmx${BLUELIGHT_BROKER_HEAP:-768m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$BL_ROOT/deploy/local/kafka/log4j2.properties" "-Dkafka.logs.dir=$logs"
    -cp "$BL_KAFKA_LIBS/*" "$@")
}

# Creates (or refreshes, when tests/interop/requirements.txt changed) the Python environment with
# the independent Confluent client used by the interop tests; sets BLUELIGHT_PYTHON.
bl_python_venv() {
  local venv="$BL_ROOT/.local/venv" req="$BL_ROOT/tests/interop/requirements.txt" sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$sum" ]; then
    bl_say "installing the Python interop client (confluent-kafka, fastavro) into .local/venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || bl_die "python3 -m venv failed; install python3-venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2 || bl_die "pip could not install $req"
    echo "$sum" > "$venv/.requirements.sha256"
  fi
  export BLUELIGHT_PYTHON="$venv/bin/python"
}

# A free TCP port on the loopback interface.
bl_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

bl_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bl_tls_for_localhost DIR: a throwaway self-signed certificate for 127.0.0.1 (keytool, from the
# JDK the broker runs on): DIR/broker.p12 (the broker's keystore, password in DIR/password) and
# DIR/ca.pem (what clients trust). Valid for 2 days; made anew by every test run.
bl_tls_for_localhost() {
  local dir=$1 password
  mkdir -p "$dir"
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  printf '%s' "$password" > "$dir/password"
  keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 2 \
      -dname "CN=127.0.0.1, OU=bluelight test broker" -ext "SAN=IP:127.0.0.1,DNS:localhost" \
      -keystore "$dir/broker.p12" -storetype PKCS12 -storepass "$password" -keypass "$password" \
      >"$dir/keytool.log" 2>&1 || { cat "$dir/keytool.log" >&2; bl_die "keytool could not make a test certificate"; }
  keytool -exportcert -rfc -alias broker -keystore "$dir/broker.p12" -storepass "$password" \
      -file "$dir/ca.pem" >>"$dir/keytool.log" 2>&1 || { cat "$dir/keytool.log" >&2; bl_die "keytool could not export the test certificate"; }
}

# bl_start_broker DIR PORT CONTROLLER_PORT [SASL_SSL_PORT TLS_DIR]: formats DIR once (data
# survives restarts), starts a single KRaft node (broker and controller in one process) in its own
# process group, waits until it accepts connections, and sets BL_BROKER_PID.
# With SASL_SSL_PORT (the tests), it also listens there with TLS (TLS_DIR from
# bl_tls_for_localhost) and SCRAM-SHA-512, and enforces ACLs there: SCRAM principals get only what
# ACLs grant. The plaintext and controller listeners stay open to all (User:ANONYMOUS is a super
# user), so the tests that do not test security are unaffected.
bl_start_broker() {
  local dir=$1 port=$2 cport=$3 sport=${4:-} tls=${5:-}
  mkdir -p "$dir/data" "$dir/logs"
  bl_port_open "$port" && bl_die "port $port is taken (another broker, or an earlier 'up' still running?); set BLUELIGHT_BROKER_PORT"
  bl_port_open "$cport" && bl_die "port $cport is taken; set BLUELIGHT_CONTROLLER_PORT"
  local listeners="PLAINTEXT://127.0.0.1:$port" map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" secure=
  if [ -n "$sport" ]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    map="$map,SASL_SSL:SASL_SSL"
    secure="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$(cat "$tls/password")
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS"
  fi
  cat > "$dir/server.properties" <<PROPS
# Written by deploy/local/lib.sh; a single KRaft node: broker and controller in one process.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
$secure
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.backoff.ms=1000
PROPS
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    bl_kafka_cmd "$dir/logs" kafka.tools.StorageTool random-uuid
    cluster_id=$("${BL_CMD[@]}" 2>/dev/null | tail -n 1)
    bl_kafka_cmd "$dir/logs" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties"
    "${BL_CMD[@]}" >"$dir/logs/format.log" 2>&1 \
      || { cat "$dir/logs/format.log" >&2; bl_die "could not format broker storage in $dir/data"; }
  fi
  # Its own process group, so stopping it stops everything it started, and a Ctrl-C meant for the
  # script reaches the broker only through bl_stop, in order.
  bl_kafka_cmd "$dir/logs" kafka.Kafka "$dir/server.properties"
  # The command line, NUL-separated: the fault suite restarts the broker with it.
  printf '%s\0' "${BL_CMD[@]}" > "$dir/command"
  setsid "${BL_CMD[@]}" >>"$dir/logs/stdout.log" 2>&1 </dev/null &
  BL_BROKER_PID=$!
  # Known to the caller's clean-up at once, so an interrupted start-up leaves nothing running.
  if declare -F bl_track >/dev/null; then bl_track "$BL_BROKER_PID" broker; fi
  echo "$BL_BROKER_PID" > "$dir/broker.pid"
  local waited=0
  until bl_port_open "$port"; do
    if ! kill -0 "$BL_BROKER_PID" 2>/dev/null; then
      tail -n 30 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2 2>/dev/null
      bl_die "the broker exited during start-up (logs in $dir/logs)"
    fi
    [ $waited -ge 120 ] && bl_die "the broker did not open port $port within 60 s (logs in $dir/logs)"
    sleep 0.5; waited=$((waited + 1))
  done
}

# bl_start_service NAME URL LOGDIR COMMAND...: starts a bluelight service in its own process group,
# waits until URL/health/ready answers 200 (showing why not, if it dies), sets BL_SERVICE_PID.
bl_start_service() {
  local name=$1 url=$2 logs=$3; shift 3
  mkdir -p "$logs"
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  BL_SERVICE_PID=$!
  if declare -F bl_track >/dev/null; then bl_track "$BL_SERVICE_PID" "$name"; fi
  local waited=0
  until curl -fsS -o /dev/null "$url/health/ready" 2>/dev/null; do
    if ! kill -0 "$BL_SERVICE_PID" 2>/dev/null; then
      tail -n 30 "$logs/$name.log" >&2
      bl_die "$name exited during start-up (log: $logs/$name.log)"
    fi
    if [ $waited -ge 120 ]; then
      curl -sS "$url/health/ready" >&2 || true
      bl_die "$name was not ready within 60 s (log: $logs/$name.log)"
    fi
    sleep 0.5; waited=$((waited + 1))
  done
}

# bl_stop PID NAME: asks a process group to stop, then forces it after 30 s.
bl_stop() {
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT -- "-$pid" 2>/dev/null || kill -CONT "$pid" 2>/dev/null  # a paused process cannot act on TERM
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    bl_say "$name (pid $pid) did not stop in 30 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}
