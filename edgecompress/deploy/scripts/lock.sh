# The device lock of every agent mode (the Python runner and native benchmark_model alike), so two
# hosts never measure one device at once, whatever mode each uses:  sh lock.sh PATH OWNER TIMEOUT_S
#
# The lock is a folder PATH.d made by mkdir (atomic), holding "PID START" of its holder (START: the
# process's start time from /proc, so a reused pid is never taken for the holder) and the owner text.
# Speaks the lock protocol on stdout, a line each: "waiting OWNER", "recovered OWNER", "timeout OWNER",
# "stale killed benchmark process(es) PIDS left by a lost host", "locked"; then holds the lock until
# its stdin closes (the session ended or its connection went) or it is hung up, and removes PATH.d.
# A holder that is gone is recovered under a guard folder PATH.r: one recoverer at a time, which
# reads the holder again before it moves PATH.d away, so two waiters never both take the lock.
# On taking the lock, this user's benchmarks still running from the lock's blobs/ folder (a runner's
# `bench`, or a benchmark binary itself) are killed: every benchmark runs under the lock, so one
# running now was left behind by a host that died or lost its connection.
L="$1.d"; G="$1.r"; OWNER="$2"; T="$3"; B="${1%/*}/blobs"
mkdir -p "${1%/*}" || exit 1
nl='
'
field() { [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f"$2"; }
alive() {  # PID START: the holder still runs
  [ -n "$1" ] || return 1
  if [ -d /proc/self ]; then [ -d "/proc/$1" ] && { [ -z "$2" ] || [ "$(field "$1" 20)" = "$2" ]; }
  else kill -0 "$1" 2>/dev/null; fi
}
age() { m=$(stat -c %Y "$1" 2>/dev/null) || { echo 0; return; }; echo $(( $(date +%s) - m )); }
holder() { pid=; st=; { read -r pid st < "$L/pid"; } 2>/dev/null; who=$(cat "$L/owner" 2>/dev/null); }
start=$(date +%s); said=
while ! mkdir "$L" 2>/dev/null; do
  holder
  if ! alive "$pid" "$st" && { [ -n "$pid" ] || [ "$(age "$L")" -ge 10 ]; }; then
    if mkdir "$G" 2>/dev/null; then
      p0=$pid; s0=$st; holder
      if [ -d "$L" ] && [ "$pid" = "$p0" ] && [ "$st" = "$s0" ] && ! alive "$pid" "$st"; then
        mv "$L" "$G/old" && rm -rf "$G/old" && echo "recovered ${who:-an unknown owner}"
      fi
      rm -rf "$G"
      continue
    elif [ "$(age "$G")" -ge 30 ]; then
      rm -rf "$G"   # a recoverer that died in the middle
    fi
  fi
  if [ $(( $(date +%s) - start )) -ge "$T" ]; then echo "timeout ${who:-an unknown owner}"; exit 1; fi
  [ -z "$said" ] && echo "waiting ${who:-an unknown owner}" && said=1
  sleep 0.2 2>/dev/null || sleep 1
done
trap 'rm -rf "$L"; exit 1' HUP INT TERM
echo "$$ $(field $$ 20)" > "$L/pid.tmp" && mv "$L/pid.tmp" "$L/pid"
printf '%s\n' "$OWNER" > "$L/owner"
if [ -d /proc/self ]; then
  killed=; mine=$(field $$ 3)
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] || [ ! -O "$d" ] && continue
    args=$(tr '\0' '\n' < "$d/cmdline" 2>/dev/null) || continue
    case "${args%%"$nl"*}" in
      "$B"/*) ;;                                                    # a benchmark binary from blobs/
      *) case "$args" in *"$B/"*) printf '%s\n' "$args" | grep -qx bench || continue ;; *) continue ;; esac ;;
    esac
    pg=$(field "$p" 3)
    if [ -n "$pg" ] && [ "$pg" != "$mine" ]; then kill -9 -- "-$pg" 2>/dev/null || kill -9 "$p" 2>/dev/null
    else kill -9 "$p" 2>/dev/null; fi
    killed="$killed $p"
  done
  [ -n "$killed" ] && echo "stale killed benchmark process(es)$killed left by a lost host"
fi
echo locked
cat > /dev/null
rm -rf "$L"
