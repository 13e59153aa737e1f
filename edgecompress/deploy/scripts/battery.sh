# Phone facts from sysfs in POSIX sh, as Android's mksh + toybox run it (cat, sleep with fractions,
# read from /proc/uptime); the host parses what it prints (deploy/android_sysfs.py). Functions only:
# the agent sends this file with the call it needs appended. ROOT is "/" on a phone (a folder in tests).

# ec_battery ROOT: B = the battery's power_supply folder (the one of type Battery, else "battery").
ec_battery() {
  B=${1%/}/sys/class/power_supply/battery
  for d in "${1%/}"/sys/class/power_supply/*; do
    [ "$(cat "$d/type" 2>/dev/null)" = Battery ] && B=$d && break
  done
}

# ec_probe ROOT: one line per fact: ONLINE <supply> <0|1>, STATUS <status>, BAT <current_now> <voltage_now>,
# TZ <zone> <type> <temp>, CF <cpu> <scaling_cur_freq> <scaling_max_freq> <cpuinfo_max_freq>.
ec_probe() {
  R=${1%/}
  for f in "$R"/sys/class/power_supply/*/online; do
    [ -r "$f" ] && d=${f%/online} && echo "ONLINE ${d##*/} $(cat "$f" 2>/dev/null)"
  done
  ec_battery "$1"
  echo "STATUS $(cat "$B/status" 2>/dev/null)"
  echo "BAT $(cat "$B/current_now" 2>/dev/null) $(cat "$B/voltage_now" 2>/dev/null)"
  for z in "$R"/sys/class/thermal/thermal_zone*; do
    [ -r "$z/temp" ] && echo "TZ ${z##*/} $(cat "$z/type" 2>/dev/null | tr " " _) $(cat "$z/temp" 2>/dev/null)"
  done
  for c in "$R"/sys/devices/system/cpu/cpu[0-9]*; do
    [ -r "$c/cpufreq/scaling_cur_freq" ] && echo "CF ${c##*/} $(cat "$c/cpufreq/scaling_cur_freq" 2>/dev/null)" \
      "$(cat "$c/cpufreq/scaling_max_freq" 2>/dev/null) $(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null)"
  done
  true
}

# ec_sample ROOT FILE STOP INTERVAL_S: the battery loop, in the background (SP = its pid): every INTERVAL_S
# it appends "<uptime_s> <current_now> <voltage_now>" to FILE. It ends when STOP exists or when the shell
# that started it is gone (killed on a time-out, or the connection dropped), so no loop is ever left
# draining the battery. It sleeps before each sample: the first is taken INTERVAL_S after it starts.
ec_sample() {
  ec_battery "$1"
  rm -f "$3"
  ( while { sleep "$4" 2>/dev/null || sleep 1; }; [ ! -e "$3" ] && kill -0 $$ 2>/dev/null; do
      read up idle < /proc/uptime
      echo "$up $(cat "$B/current_now") $(cat "$B/voltage_now")"
    done ) > "$2" 2>/dev/null &
  SP=$!
}
