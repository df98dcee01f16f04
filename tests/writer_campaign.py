"""Fault and race campaigns on grtv_nb's writers: kill -9 at random moments (and at every step of
a commit), concurrent writers into one folder. tests/test_writer_faults.py runs them with small
counts; run alone for a long campaign that prints its figures::

    .venv/bin/python tests/writer_campaign.py --kills 100 --races 20 --steps

How it works: a *zygote* process imports grtv_nb once, then forks one child per run (a fresh
interpreter per run would spend seconds importing). Children get their job as JSON, report
``ready`` (setup done), wait for ``go`` (so racing children start together), report ``start``
right before the write, and ``done`` with the outcome. Children are SIGKILLed at random moments
of their write (by a timer thread of their own, so the moment does not depend on how fast the
campaign reads) or at their k-th rename/unlink (every step of a commit); the campaign then checks
the folder: no file under a final name is partial (exports:
complete DICOM, image slices byte-identical to a clean export; augmentation: every file
byte-identical to a clean run with the same seed), every augmentation round whole once the next
run recovered, no leftover temporaries, nothing outside the targets changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BOOKKEEPING = re.compile(r"^\.grtv_nb")
READY_TIMEOUT_S = 120.0
POLL_S = 0.1


def _dead(pid: int) -> bool:
    """Whether a child of the zygote has ended (a zombie, or gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# ----------------------------------------------------------------------------------------------
# the zygote (runs in its own process)
# ----------------------------------------------------------------------------------------------
def _say(obj: dict) -> None:
    os.write(1, (json.dumps(obj) + "\n").encode())  # one write: lines of racing children don't mix


def augment_inputs(shape=(24, 48, 48)):
    """The deterministic image + label volumes the augmentation runs use."""
    import numpy as np

    z, y, x = np.indices(shape)
    ct = ((x * 7 + y * 3 + z * 11) % 400 - 200).astype(np.int16)
    c = np.array(shape) / 2
    lbl = (((z - c[0]) / 6) ** 2 + ((y - c[1]) / 12) ** 2 + ((x - c[2]) / 10) ** 2 <= 1).astype(np.uint8) * 255
    return [ct, lbl]


def pattern(name: str, tag: str, size: int) -> bytes:
    """The content a `replace` job writes into ``name``: ``name:tag;`` repeated to ``size``."""
    unit = f"{name}:{tag};".encode()
    return (unit * (size // len(unit) + 1))[:size]


def _kill_at_step(k: int) -> None:
    """Make this process SIGKILL itself at its k-th os.replace/os.unlink call (1-based)."""
    count = {"n": 0}

    def wrap(fn):
        def inner(*a, **kw):
            count["n"] += 1
            if count["n"] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **kw)

        return inner

    os.replace = wrap(os.replace)
    os.unlink = wrap(os.unlink)
    return count


def _child(job: dict, barrier: int) -> None:
    import warnings

    warnings.simplefilter("ignore")
    counter = None
    try:
        act = job["action"]
        if act == "export":
            from grtv_nb import open_study
            from grtv_nb.export import export_rt

            st = open_study(job["src"])
            run = lambda: export_rt(st, job["target"], overwrite=job.get("overwrite", False))  # noqa: E731
        elif act == "augment":
            from grtv_nb.augment import augment_volumes

            vols = augment_inputs()
            names = job.get("names", ["ct", "lbl"])
            warm = Path(job["target"]).parent / f"warm-{os.getpid()}"  # compile the kernels before the timed run
            augment_volumes(vols, warm, times=1, names=names, seed=0, rotate=True, deform=True, deform_rate=0.05,
                            write_mhd=True, progress=False)
            import shutil

            shutil.rmtree(warm)
            run = lambda: augment_volumes(vols, job["target"], times=job["times"], names=names,  # noqa: E731
                                          seed=job["seed"], rotate=True, deform=True, deform_rate=0.05,
                                          write_mhd=True, progress=False)
        elif act == "replace":
            from grtv_nb.fileio import replace_folder

            def run():
                with replace_folder(job["target"], "target", overwrite=job.get("overwrite", False)) as stage:
                    for name, size in job["files"].items():
                        (stage / name).write_bytes(pattern(name, job["tag"], size))
        else:
            raise ValueError(act)
        _say({"ready": os.getpid()})
        os.read(barrier, 1)  # returns when the zygote closes the write end: "go"
        counter = _kill_at_step(int(job.get("kill_at_step") or 0))  # 0: counts the steps only
        _say({"start": os.getpid(), "t": time.time()})
        if job.get("kill_after") is not None:  # SIGKILL at that moment of the write, whatever it is doing
            import threading

            threading.Timer(float(job["kill_after"]), os.kill, (os.getpid(), signal.SIGKILL)).start()
        run()
        _say({"done": os.getpid(), "ok": True, "steps": counter["n"], "t": time.time()})
    except BaseException as exc:  # report every outcome, never a traceback
        _say({"done": os.getpid(), "ok": False, "err": type(exc).__name__, "msg": str(exc)[:300],
              "steps": counter["n"] if counter else -1})
    finally:
        os._exit(0)


def zygote_main() -> None:
    """Read jobs on stdin: {"op": "spawn", "n": N, "job": {...}} forks N children; {"op": "go"}
    releases them; {"op": "reap"} waits for them and reports their exit statuses."""
    import grtv_nb.augment  # noqa: F401 - imported once, before forking
    import grtv_nb.export  # noqa: F401
    import grtv_nb.fileio  # noqa: F401
    import grtv_nb.study  # noqa: F401

    pids: list[int] = []
    w = -1
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "spawn":
            r, w = os.pipe()
            pids = []
            for _ in range(cmd["n"]):
                pid = os.fork()
                if pid == 0:
                    os.close(w)
                    _child(cmd["job"], r)
                pids.append(pid)
            os.close(r)
            _say({"spawned": pids})
        elif cmd["op"] == "go":
            os.close(w)
        elif cmd["op"] == "reap":
            status = {}
            for pid in pids:
                _, st = os.waitpid(pid, 0)
                status[str(pid)] = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
            _say({"reaped": status})
        elif cmd["op"] == "quit":
            break


# ----------------------------------------------------------------------------------------------
# the campaign side
# ----------------------------------------------------------------------------------------------
class Zygote:
    """The campaign's handle on a zygote process."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--zygote"], cwd=str(ROOT),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._buf = b""

    def send(self, obj: dict) -> None:
        self.p.stdin.write((json.dumps(obj) + "\n").encode())
        self.p.stdin.flush()

    def read(self, timeout: float = READY_TIMEOUT_S) -> dict:
        end = time.time() + timeout
        while b"\n" not in self._buf:
            left = end - time.time()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise TimeoutError("no answer from the zygote or its children")
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the zygote ended")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, job: dict, n: int = 1, timeout: float = READY_TIMEOUT_S) -> dict:
        """Run ``n`` children on ``job`` together. Returns {pid: outcome}: the child's ``done``
        message (with ``t0``, its start time), or {"killed": True} for one SIGKILLed."""
        self.send({"op": "spawn", "n": n, "job": job})
        ready, pids, out, starts = set(), None, {}, {}

        def mine(m: dict, key: str) -> bool:
            return key in m and (pids is None or m[key] in pids)

        while pids is None or len(ready) < n:
            m = self.read(timeout)
            if "spawned" in m:
                pids = m["spawned"]
            elif mine(m, "ready"):
                ready.add(m["ready"])
            elif mine(m, "done"):  # failed during its setup
                ready.add(m["done"])
                out[m["done"]] = m
        self.send({"op": "go"})
        end = time.time() + timeout
        while len(out) < n:
            if time.time() > end:
                raise TimeoutError(f"children {sorted(set(pids) - set(out))} did not finish in {timeout} s")
            try:
                m = self.read(POLL_S)
            except TimeoutError:
                for pid in pids:
                    if pid not in out and _dead(pid):  # SIGKILLed: no "done" will come
                        out[pid] = {"killed": True}
                continue
            if mine(m, "start"):
                starts[m["start"]] = m["t"]
            elif mine(m, "done"):
                out[m["done"]] = dict(m, t0=starts.get(m["done"]))
        self.send({"op": "reap"})
        while "reaped" not in (m := self.read(timeout)):
            if mine(m, "done"):  # reported while we found it ended
                out[m["done"]] = dict(m, t0=starts.get(m["done"]))
        for pid, st in m["reaped"].items():
            if st == -signal.SIGKILL:
                out[int(pid)] = {"killed": True}
        return out

    def close(self) -> None:
        try:
            self.send({"op": "quit"})
            self.p.wait(timeout=10)
        except Exception:  # pragma: no cover
            self.p.kill()


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
def snapshot(root: Path, exclude: list[Path]) -> dict[str, tuple]:
    """Every file and folder under ``root`` outside ``exclude``: rel path -> (kind, size, sha1)."""
    out = {}
    ex = [str(Path(e).resolve()) for e in exclude]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if str(Path(dirpath, d).resolve()) not in ex]
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = ("dir", 0, "")
        for f in filenames:
            p = Path(dirpath, f)
            if p.is_symlink():
                out[os.path.relpath(p, root)] = ("link", 0, os.readlink(p))
                continue
            data = p.read_bytes()
            out[os.path.relpath(p, root)] = ("file", len(data), hashlib.sha1(data).hexdigest())
    return out


def leftovers(folder: Path) -> list[str]:
    """grtv_nb bookkeeping entries in ``folder`` (lock, journal, staging, temporaries); the
    manifest is not one."""
    if not folder.is_dir():
        return []
    return sorted(n for n in os.listdir(folder) if BOOKKEEPING.match(n) and n != ".grtv_nb-export.json"
                  or "~grtv_nb-tmp-" in n)


def final_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def partial_export_files(folder: Path, reference: Path) -> list[str]:
    """Files under final names in an export folder that are not complete: image slices must be
    byte-identical to the clean export's, the RTSTRUCT/RTDOSE must parse whole."""
    import pydicom

    bad = []
    for p in final_files(folder):
        ref = reference / p.name
        try:
            if p.name.startswith(("CT_", "MR_", "IMG_", "PT_")):
                if p.read_bytes() != ref.read_bytes():
                    bad.append(p.name)
            else:
                ds = pydicom.dcmread(p)
                rds = pydicom.dcmread(ref)
                if set(ds.keys()) != set(rds.keys()):
                    bad.append(p.name)
                elif "PixelData" in ds and ds.pixel_array.shape != rds.pixel_array.shape:
                    bad.append(p.name)
                elif "ROIContourSequence" in ds and [len(r.get("ContourSequence", [])) for r in ds.ROIContourSequence] \
                        != [len(r.get("ContourSequence", [])) for r in rds.ROIContourSequence]:
                    bad.append(p.name)
        except Exception:
            bad.append(p.name)
    return bad


def manifest_matches(folder: Path) -> bool:
    """The manifest lists exactly the files under final names, with their sizes."""
    m = folder / ".grtv_nb-export.json"
    if not m.is_file():
        return not final_files(folder)
    files = {f["name"]: f["size"] for f in json.loads(m.read_text())["files"]}
    return files == {p.name: p.stat().st_size for p in final_files(folder)}


def augment_state(folder: Path, reference: Path, prefixes=("ct", "lbl")) -> tuple[list[str], list[int]]:
    """(files of ``prefixes`` under final names that differ from the clean run's, rounds not
    whole). A round the journal of a killed run is moving counts as whole (the next run finishes
    it)."""
    bad, rounds = [], {}
    journal = folder / ".grtv_nb-journal.json"
    pending = set(json.loads(journal.read_text())["move"]) if journal.exists() else set()
    for p in final_files(folder):
        m = re.match(r"(.*)\.(\d{4})\.(raw|mhd)$", p.name)
        if not m or m.group(1) not in prefixes:
            continue
        if p.read_bytes() != (reference / p.name).read_bytes():
            bad.append(p.name)
        rounds.setdefault(int(m.group(2)), set()).add(p.name)
    broken = [r for r, names in rounds.items() if len(names) != 2 * len(prefixes) and not (names & pending)]
    return bad, sorted(broken)


# ----------------------------------------------------------------------------------------------
# campaigns
# ----------------------------------------------------------------------------------------------
def one(z: Zygote, job: dict, **kw) -> dict:
    """The outcome of one child running ``job``."""
    (res,) = z.run(job, **kw).values()
    return res


def _more_runs(figures: dict, runs: int, min_killed: int) -> bool:
    """Go on until ``runs`` runs are done and ``min_killed`` of them were killed (at most 4x the runs):
    a machine faster than the timing run must not turn every kill into a finished write."""
    return figures["runs"] < runs or (figures["killed"] < min_killed and figures["runs"] < 4 * runs)


def kill_export_campaign(z: Zygote, src: Path, work: Path, runs: int, rng: random.Random,
                         min_killed: int | None = None) -> dict:
    """Kill exports of ``src`` at random moments; each killed run is followed by a recovery run."""
    min_killed = runs // 2 if min_killed is None else min_killed
    ref = work / "reference"
    clean = z.run({"action": "export", "src": str(src), "target": str(ref)})
    (outcome,) = clean.values()
    assert outcome.get("ok"), outcome
    (timing,) = z.run({"action": "export", "src": str(src), "target": str(work / "timing")}).values()
    span = max(timing["t"] - timing["t0"], 0.2) * 1.1
    before = snapshot(work.parent, [work])
    figures = {"runs": 0, "killed": 0, "killed_mid_commit": 0, "partial": 0, "recovered": 0,
               "leftovers_after_recovery": 0, "manifest_mismatch": 0, "outside_changed": 0, "errors": []}
    i = -1
    while _more_runs(figures, runs, min_killed):
        i += 1
        target = work / f"k{i}"
        overwrite = i % 2 == 1
        if overwrite:  # kill while replacing a previous export
            assert one(z, {"action": "export", "src": str(src), "target": str(target)})["ok"]
        res = one(z, {"action": "export", "src": str(src), "target": str(target), "overwrite": overwrite,
                      "kill_after": rng.uniform(0.02, 0.8) * span})
        figures["runs"] += 1
        figures["killed"] += bool(res.get("killed"))
        figures["killed_mid_commit"] += (target / ".grtv_nb-journal.json").exists()
        if not res.get("killed") and not res.get("ok"):
            figures["errors"].append(res)
        figures["partial"] += len(partial_export_files(target, ref))
        again = one(z, {"action": "export", "src": str(src), "target": str(target),
                                 "overwrite": True})
        if again.get("ok"):
            figures["recovered"] += 1
        else:
            figures["errors"].append(again)
        figures["partial"] += len(partial_export_files(target, ref))
        figures["leftovers_after_recovery"] += len(leftovers(target))
        figures["manifest_mismatch"] += not manifest_matches(target)
    after = snapshot(work.parent, [work])
    figures["outside_changed"] = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
    return figures


def kill_augment_campaign(z: Zygote, work: Path, runs: int, rng: random.Random, times: int = 4,
                          min_killed: int | None = None) -> dict:
    """Kill augmentation runs at random moments; each is followed by a recovery run into the same folder."""
    min_killed = runs // 2 if min_killed is None else min_killed
    ref = work / "reference"
    job = {"action": "augment", "times": times, "seed": 7}
    (clean,) = z.run(dict(job, target=str(ref))).values()
    assert clean["ok"], clean
    # time a second (warm) run: the first one pays for imports and compiled kernels
    (timing,) = z.run(dict(job, target=str(work / "timing"))).values()
    assert timing["ok"], timing
    span = max(timing["t"] - timing["t0"], 0.05) * 1.1
    figures = {"runs": 0, "killed": 0, "killed_mid_commit": 0, "differing_files": 0,
               "rounds_not_whole_before_recovery": 0, "rounds_not_whole_after_recovery": 0,
               "leftovers_after_recovery": 0, "errors": []}
    i = -1
    while _more_runs(figures, runs, min_killed):
        i += 1
        target = work / f"a{i}"
        res = one(z, dict(job, target=str(target), kill_after=rng.uniform(0.02, 0.8) * span))
        figures["runs"] += 1
        figures["killed"] += bool(res.get("killed"))
        figures["killed_mid_commit"] += (target / ".grtv_nb-journal.json").exists()
        bad, broken = augment_state(target, ref)
        figures["differing_files"] += len(bad)
        figures["rounds_not_whole_before_recovery"] += len(broken)
        # the next run into the folder (other names) finishes or removes what the killed one left
        again = one(z, dict(job, target=str(target), times=1, names=["xct", "xlbl"]))
        if not again.get("ok"):
            figures["errors"].append(again)
        bad, broken = augment_state(target, ref)
        figures["differing_files"] += len(bad)
        figures["rounds_not_whole_after_recovery"] += len(broken)
        figures["leftovers_after_recovery"] += len(leftovers(target))
    return figures


def step_campaign(z: Zygote, work: Path) -> dict:
    """Kill a folder replacement at every one of its renames/unlinks (replacing a previous set of
    files with a partly overlapping one), then recover; checks every final file is whole."""
    old = {"a.dcm": 5000, "b.dcm": 7000, "gone.dcm": 300}
    new = {"a.dcm": 6000, "b.dcm": 7000, "c.dcm": 100}
    probe = work / "probe"
    assert one(z, {"action": "replace", "target": str(probe), "files": old, "tag": "old"})["ok"]
    res = one(z, {"action": "replace", "target": str(probe), "files": new, "tag": "new",
                           "overwrite": True})
    steps = res["steps"]
    figures = {"kill_points": steps, "partial": 0, "mixed_sets_after_recovery": 0, "leftovers_after_recovery": 0,
               "errors": []}
    for k in range(1, steps + 1):
        target = work / f"s{k}"
        assert one(z, {"action": "replace", "target": str(target), "files": old, "tag": "old"})["ok"]
        z.run({"action": "replace", "target": str(target), "files": new, "tag": "new", "overwrite": True,
               "kill_at_step": k})

        def whole(p: Path) -> str | None:
            data = p.read_bytes()
            for tag, files in (("old", old), ("new", new)):
                if p.name in files and data == pattern(p.name, tag, files[p.name]):
                    return tag
            return None

        tags = {p.name: whole(p) for p in final_files(target)}
        figures["partial"] += sum(t is None for t in tags.values())
        # recovery: a run that only reads the state (overwrite with the same new set)
        again = one(z, {"action": "replace", "target": str(target), "files": new, "tag": "new",
                                 "overwrite": True})
        if not again.get("ok"):
            figures["errors"].append(again)
        tags = {p.name: whole(p) for p in final_files(target)}
        if set(tags) != set(new) or set(tags.values()) != {"new"}:
            figures["mixed_sets_after_recovery"] += 1
        figures["leftovers_after_recovery"] += len(leftovers(target))
    return figures


def race_campaign(z: Zygote, job: dict, work: Path, rounds: int, n: int, prepare=None) -> dict:
    """``rounds`` races of ``n`` children running ``job`` into one target each."""
    figures = {"rounds": 0, "runs": 0, "winners": [], "clear_failures": 0, "unclear_failures": [], "leftovers": 0,
               "manifest_mismatch": 0}
    for i in range(rounds):
        target = work / f"r{i}"
        if prepare is not None:
            prepare(target)
        res = z.run(dict(job, target=str(target)), n=n)
        figures["rounds"] += 1
        figures["runs"] += n
        figures["winners"].append(sum(1 for r in res.values() if r.get("ok")))
        for r in res.values():
            if r.get("ok"):
                continue
            if r.get("err") in ("FolderBusyError", "ValidationError"):
                figures["clear_failures"] += 1
            else:
                figures["unclear_failures"].append(r)
        figures["leftovers"] += len(leftovers(target))
        if job["action"] != "augment":
            figures["manifest_mismatch"] += not manifest_matches(target)
    return figures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kills", type=int, default=20, help="killed exports and killed augmentations (each)")
    ap.add_argument("--races", type=int, default=10, help="export races")
    ap.add_argument("--racers", type=int, default=6, help="processes per race")
    ap.add_argument("--steps", action="store_true", help="also kill a replacement at each of its steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one)")
    a = ap.parse_args(argv)
    if a.zygote:
        zygote_main()
        return 0
    import tempfile

    from grtv_nb.phantom import write_phantom

    root = a.work or Path(tempfile.mkdtemp(prefix="grtv_nb-writer-campaign-"))
    src = root / "source" / "phantom"
    if not src.exists():
        write_phantom(src)
    rng = random.Random(a.seed)
    z = Zygote()
    try:
        t = time.time()
        if a.steps:
            print("kill at every step of a replacement:", step_campaign(z, root / "steps"))
        print("killed exports:", kill_export_campaign(z, src, root / "kill-export", a.kills, rng))
        print("killed augmentations:", kill_augment_campaign(z, root / "kill-augment", a.kills, rng))
        print("export races (overwrite=False):",
              race_campaign(z, {"action": "export", "src": str(src)}, root / "race-new", a.races, a.racers))
        print("augment races:", race_campaign(z, {"action": "augment", "times": 2, "seed": 1}, root / "race-aug",
                                              max(1, a.races // 2), a.racers))
        print(f"campaign took {time.time() - t:.0f} s in {root}")
    finally:
        z.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
