"""``edgecompress targets list|check NAME... [--targets FILE] [--trust-new-host] [--json]``"""
from __future__ import annotations

from .common import add_targets_file_arg, print_json, table


def add(sub) -> None:
    p = sub.add_parser("targets", help="list target devices and check what they have")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    lst = psub.add_parser("list", help="targets of the inventory (plus the built-in 'local')")
    add_targets_file_arg(lst)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    chk = psub.add_parser("check", help="connect and report arch, OS, Python, runtimes, disk, meters, sensors")
    chk.add_argument("names", nargs="+", metavar="NAME")
    add_targets_file_arg(chk)
    chk.add_argument("--trust-new-host", action="store_true",
                     help="trust and record an unknown host key (a changed key is always refused)")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=_check)


def _list(args) -> int:
    from ..targets import load_targets

    targets = load_targets(args.targets_file)
    if args.json:
        print_json([t.model_dump() for t in targets.values()])
        return 0
    rows = [(t.name, t.profile, t.transport, t.host or t.serial or "(this machine)", t.workdir)
            for t in targets.values()]
    print(table(["name", "profile", "transport", "where", "workdir"], rows))
    return 0


def _runtime_text(rt: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in rt.items() if v) or "none"


def _check(args) -> int:
    from ..deploy import check_target

    reports = [check_target(name, args.targets_file, trust_new_host=args.trust_new_host) for name in args.names]
    code = 0 if all(rep["ok"] for rep in reports) else 1
    if args.json:
        print_json(reports)
        return code
    for rep in reports:
        f = rep["facts"]
        print(f"{rep['target']}: {'ok' if rep['ok'] else 'NOT READY'}")
        if rep["error"]:
            print(f"  error: {rep['error']}")
        if rep.get("android"):
            a = rep["android"]
            print(f"  adb {a['serial']}: {a['manufacturer']} {a['model']} ({a['soc'] or '?'}), {a['abi']}, "
                  f"Android {a['android']} (API {a['sdk']}), mode {a['mode']}")
            print(f"  can run: {'; '.join(a['can_run']) or 'nothing yet'}")
            print(f"  energy: {a['energy']}; thermal zones: {a['thermal_zones']}; cpufreq: {a['cpufreq_cpus']} CPUs")
            for d in rep["attached"]:
                print(f"  attached: {d['serial']} {d['state']} {d.get('model') or ''} {d.get('abi') or ''} "
                      f"{'Android ' + d['android'] if d.get('android') else d.get('error', '')}".rstrip())
        if f:
            zones = ", ".join(f"{z['type'] or z['zone']} {z['temp_c']:.0f}°C" for z in f["thermal_zones"]) or "none"
            print(f"  arch {f['arch']}{' (emulated)' if f.get('emulated') else ''}, {f['os']}, kernel {f['kernel']}, {f['cpu_count']} CPUs, "
                  f"{f['memory_mb']} MB RAM")
            print(f"  python {f['python']}, numpy {f['numpy'] or 'MISSING'}")
            print(f"  runtimes: {_runtime_text(f['runtimes'])}")
            print(f"  free disk: {f['free_disk_mb']} MB")
            print(f"  energy meters: {', '.join(f['energy_meters']) or 'none'}; thermal: {zones}; "
                  f"cpufreq: {len(f['cpu_freq_paths'])} CPUs; vcgencmd: {'yes' if f['vcgencmd'] else 'no'}")
        for tip in rep["advice"]:
            print(f"  - {tip}")
    return code
