"""``edgecompress profiles list|show NAME|validate FILE...``"""
from __future__ import annotations

from .common import print_json, table


def add(sub) -> None:
    p = sub.add_parser("profiles", help="list, show and validate device profiles")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    lst = psub.add_parser("list", help="the profiles shipped in profiles/")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    show = psub.add_parser("show", help="one profile, validated, with defaults filled in")
    show.add_argument("name", help="profile name or path to a YAML file")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    val = psub.add_parser("validate", help="validate profile files; exit 2 on the first bad one")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=_validate)


def _list(args) -> int:
    from ..profiles import list_profiles

    profiles = list_profiles()
    if args.json:
        print_json([p.model_dump() for p in profiles])
        return 0
    rows = [(p.name, p.hardware.arch, p.hardware.cores, p.hardware.memory_mb,
             ",".join(p.runtimes), " ".join(a.key for a in p.artifacts), p.description[:48])
            for p in profiles]
    print(table(["name", "arch", "cores", "memory_mb", "runtimes", "artifacts", "description"], rows))
    return 0


def _show(args) -> int:
    from ..profiles import load_profile

    profile = load_profile(args.name)
    if args.json:
        print_json(profile.model_dump())
    else:
        import yaml

        print(yaml.safe_dump(profile.model_dump(), sort_keys=False).rstrip())
    return 0


def _validate(args) -> int:
    from ..errors import ProfileError
    from ..profiles import load_profile

    results, code = [], 0
    for f in args.files:
        try:
            load_profile(f if ("/" in f or f.endswith((".yaml", ".yml"))) else f"./{f}")
            results.append({"file": f, "ok": True, "error": None})
        except ProfileError as e:
            results.append({"file": f, "ok": False, "error": str(e)})
            code = 2
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['file']}" + (f"\n     {r['error']}" if r["error"] else ""))
    return code
