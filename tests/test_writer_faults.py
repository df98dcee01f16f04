"""Writers under kill -9 and races (small, seeded campaigns of tests/writer_campaign.py; run that
module alone for long ones): no partial file under a final name, a killed export or augmentation
finished or cleaned by the next run, every augmentation round whole, exactly one winner when
exports race into one folder, nothing outside the targets touched."""

from __future__ import annotations

import os
import random
import shutil
import sys

import numpy as np
import pytest
import writer_campaign as wc

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not os.path.isdir("/proc") or sys.platform != "linux",
    reason="the kill/race campaigns fork children and watch them in /proc (Linux)")

#: slices of the phantom the campaigns export (small: each child opens and exports it)
CAMPAIGN_Z = np.arange(12) * 3.0 - 16.5


@pytest.fixture(scope="module")
def zygote():
    z = wc.Zygote()
    yield z
    z.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(campaign root, phantom patient folder inside it)."""
    from grtv_nb.phantom import write_phantom

    root = tmp_path_factory.mktemp("campaign")
    return root, write_phantom(root / "source" / "p", z_positions=CAMPAIGN_Z)


def test_kill_at_every_step_of_a_commit(zygote, tmp_path):
    f = wc.step_campaign(zygote, tmp_path)
    assert f["kill_points"] >= 7  # journal, removal, 3 moves, manifest, journal removal, lock
    assert f == {"kill_points": f["kill_points"], "partial": 0, "mixed_sets_after_recovery": 0,
                 "leftovers_after_recovery": 0, "errors": []}


def test_kill_exports_at_random_moments(zygote, source):
    root, src = source
    f = wc.kill_export_campaign(zygote, src, root / "kill-export", runs=4, rng=random.Random(11))
    assert f["killed"] >= 2, f  # the kills landed during the export
    assert (f["partial"], f["leftovers_after_recovery"], f["manifest_mismatch"], f["outside_changed"]) == (0,) * 4, f
    assert f["recovered"] == f["runs"] and not f["errors"], f


def test_kill_augmentations_at_random_moments(zygote, tmp_path):
    f = wc.kill_augment_campaign(zygote, tmp_path, runs=4, rng=random.Random(5), times=4)
    assert f["killed"] >= 2, f
    assert (f["differing_files"], f["rounds_not_whole_before_recovery"], f["rounds_not_whole_after_recovery"],
            f["leftovers_after_recovery"]) == (0, 0, 0, 0), f
    assert not f["errors"], f


def test_racing_exports_have_exactly_one_winner(zygote, source):
    root, src = source
    f = wc.race_campaign(zygote, {"action": "export", "src": str(src)}, root / "race-new", rounds=2, n=4)
    assert f["winners"] == [1, 1], f
    assert f["clear_failures"] == 6 and not f["unclear_failures"], f
    assert f["leftovers"] == 0 and f["manifest_mismatch"] == 0, f


def test_racing_overwrites_fail_clearly_and_leave_one_whole_export(zygote, source):
    root, src = source
    first = root / "race-first"
    assert wc.one(zygote, {"action": "export", "src": str(src), "target": str(first)})["ok"]
    f = wc.race_campaign(zygote, {"action": "export", "src": str(src), "overwrite": True}, root / "race-over",
                         rounds=1, n=3, prepare=lambda t: shutil.copytree(first, t))
    assert f["winners"][0] >= 1 and not f["unclear_failures"], f  # a later one may win after the first ended
    assert f["leftovers"] == 0 and f["manifest_mismatch"] == 0, f


def test_racing_augmentations_keep_rounds_whole(zygote, tmp_path):
    f = wc.race_campaign(zygote, {"action": "augment", "times": 2, "seed": 1}, tmp_path, rounds=1, n=3)
    assert f["winners"][0] >= 1 and not f["unclear_failures"] and f["leftovers"] == 0, f
    names = sorted(os.listdir(tmp_path / "r0"))
    assert names == sorted(f"{p}.{r:04d}.{e}" for p in ("ct", "lbl") for r in (1, 2) for e in ("raw", "mhd"))
