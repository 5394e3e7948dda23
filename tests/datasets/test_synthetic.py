"""The synthetic generator: real MP4s, real AVE/LLP files, determinism, learnability."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from synthetic_probe import ave_foreground_accuracy, decode

from avpipe.config import ConfigError
from avpipe.datasets import ave, llp
from avpipe.datasets.synthetic import generate, resolve
from avpipe.datasets.synthetic.classes import CLASS_BANK, make_classes
from avpipe.datasets.synthetic.generate import plan_part
from avpipe.datasets.synthetic.plan import Track, VideoPlan
from avpipe.datasets.synthetic.render import render_audio, render_frames

SMOKE = {"preset": "smoke"}
TINY = {
    "preset": "smoke",
    "duration_s": 4,
    "ave": {"train": 3, "val": 1, "test": 1},
    "llp": {"train": 3, "val": 1, "test": 1},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    cfg = resolve(SMOKE)
    return {part: (generate(cfg, part, root / part), root / part)[1] for part in ("ave", "llp")}


def _truth(root: Path) -> list[dict[str, str]]:
    lines = (root / "truth.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"), strict=True)) for ln in lines[1:]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- config ------------------------------------------------------------------------
def test_presets_and_overrides() -> None:
    d = resolve({})
    assert (d.n_classes, d.ave.train, d.ave.val, d.ave.test) == (6, 24, 12, 12)
    assert (d.llp.train, d.llp.val, d.llp.test) == (24, 12, 12)
    assert (d.width, d.height, d.fps, d.sample_rate, d.channels) == (128, 96, 16, 44100, 2)
    s = resolve(SMOKE)
    assert (s.n_classes, s.ave.train, s.llp.test) == (3, 6, 3)
    b = resolve({"preset": "benchmark"})
    assert (b.n_classes, b.ave.train, b.ave.val, b.llp.test) == (8, 240, 60, 120)
    assert b.ave.background_only == 0.3 and d.ave.background_only == 0.0
    h = resolve({"preset": "hard"})
    assert h.difficulty.similarity > d.difficulty.similarity
    assert h.difficulty.audio_snr_db < d.difficulty.audio_snr_db
    # a key that is set beats the preset, a null key keeps it
    o = resolve({"preset": "smoke", "n_classes": 5, "crf": None, "ave": {"val": 7, "test": None}})
    assert (o.n_classes, o.crf, o.ave.val, o.ave.test) == (5, 26, 7, 3)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"ave": {"trian": 3}}, "synthetic.ave: unknown key 'trian'"),
        ({"preset": "huge"}, "'huge' is not one of"),
        ({"n_classes": 13}, "n_classes: 13 is outside 1..12"),
        ({"ave": {"min_event_s": 5, "max_event_s": 3}}, "min_event_s"),
        ({"width": 127}, "must be even"),
        ({"ave": {"background_only": 1.5}}, "background_only: 1.5 not in"),
        ({"llp": {"p_audio_only": 0.7, "p_visual_only": 0.5}}, "p_audio_only \\+ p_visual_only"),
    ],
)
def test_bad_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(raw)


def test_class_bank_signatures_are_distinct() -> None:
    visual = {(c.shape, c.colour, c.texture, c.motion) for c in CLASS_BANK}
    audio = {(c.pitch_hz, c.timbre, c.pulse_hz, c.pitch_mod) for c in CLASS_BANK}
    assert len(visual) == len(audio) == len({c.name for c in CLASS_BANK}) == 12
    for a in CLASS_BANK:  # every pair differs in >= 2 visual and >= 2 audio cues
        for b in CLASS_BANK:
            if a is b:
                continue
            vis = sum(
                x != y
                for x, y in zip(
                    (a.shape, a.colour, a.texture, a.motion),
                    (b.shape, b.colour, b.texture, b.motion),
                    strict=True,
                )
            )
            aud = sum(
                x != y
                for x, y in zip(
                    (a.pitch_hz, a.timbre, a.pulse_hz, a.pitch_mod),
                    (b.pitch_hz, b.timbre, b.pulse_hz, b.pitch_mod),
                    strict=True,
                )
            )
            assert vis >= 2 and aud >= 2, (a.name, b.name)
    same = make_classes(6, similarity=1.0)
    assert {c.colour for c in same} == {(128.0, 128.0, 128.0)}
    assert max(c.pitch_hz for c in same) == pytest.approx(500.0)


# -- rendering ----------------------------------------------------------------------
def test_render_shows_and_plays_the_class_only_in_its_seconds() -> None:
    """Clean render: the object's colour shows, and its pitch sounds, only in [onset, offset)."""
    cfg = resolve(
        {
            "n_classes": 2,
            "duration_s": 4,
            "difficulty": {
                "visual_noise": 0,
                "distractors": 0,
                "distractor_sounds": 0,
                "similarity": 0,
                "audio_snr_db": 40,
            },
        }
    )
    classes = make_classes(2)
    tr = Track(0, 1, 3, (0.5, 0.5))  # Chime: red disc, 523 Hz
    plan = VideoPlan("x", "train", 7, visual=[tr], audio=[Track(0, 2, 4)])
    frames = render_frames(cfg, classes, plan)
    assert frames.shape == (4 * 16, 96, 128, 3) and frames.dtype == np.uint8
    red = (frames[..., 0] > 180) & (frames[..., 1] < 90) & (frames[..., 2] < 90)
    per_second = red.reshape(4, 16, -1).sum(axis=(1, 2))
    assert per_second[0] == per_second[3] == 0
    disc_area = np.pi * (0.16 * 96) ** 2
    assert (per_second[1:3] / 16 > 0.8 * disc_area).all()
    audio = render_audio(cfg, classes, plan)
    assert audio.shape == (2, 4 * 44100) and np.abs(audio).max() <= 0.99
    f = np.fft.rfftfreq(44100, 1 / 44100)
    band = (f > 500) & (f < 550)
    energy = [
        np.abs(np.fft.rfft(audio[0, s * 44100 : (s + 1) * 44100]))[band].sum() for s in range(4)
    ]
    assert min(energy[2:]) > 50 * max(energy[:2])


# -- files ----------------------------------------------------------------------------
def test_mp4s_have_h264_and_aac_stereo_and_decode_to_full_length(smoke: dict[str, Path]) -> None:
    cfg = resolve(SMOKE)
    for part, root in smoke.items():
        videos = sorted((root / "videos").glob("*.mp4"))
        assert len(videos) == 12, part
        for path in videos[:4]:
            with av.open(str(path)) as c:
                v, a = c.streams.video[0], c.streams.audio[0]
                assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
                assert (v.codec_context.width, v.codec_context.height) == (128, 96)
                assert a.codec_context.sample_rate == 44100 and a.codec_context.channels == 2
                assert float(c.duration / av.time_base) == pytest.approx(10.0, abs=0.05)
            frames, audio, sr = decode(path)
            assert frames.shape == (cfg.duration_s * cfg.fps, 96, 128, 3)
            assert audio.shape[0] == 2 and abs(audio.shape[1] - 10 * sr) <= 2048
            assert 0.01 < float(np.abs(audio).mean()) < 0.5


def test_ave_files_parse_with_the_ave_adapter(smoke: dict[str, Path]) -> None:
    root = smoke["ave"]
    lines = (root / "Annotations.txt").read_text().splitlines()
    assert lines[0] == "Category&VideoID&Quality&StartTime&EndTime" and len(lines) == 13
    names = [c.name for c in CLASS_BANK[:3]]
    assert (root / "categories.txt").read_text().split("\n")[:3] == names
    m = ave.load({"format": "ave", "root": str(root)})  # first appearance, no classes file
    assert m.classes == names and m.meta["header"] and m.meta["anomalies"] == {}
    assert Counter(s.split for s in m.samples) == {"train": 6, "val": 3, "test": 3}
    assert all(
        s.present and s.n_segments == 10 and s.duration == pytest.approx(10, abs=0.05)
        for s in m.samples
    )
    truth = _truth(root)
    assert len(m.events) == 12
    for e in m.events:  # the labelled event is the track both modalities share
        assert e.modality == "audio-visual" and 2 <= e.offset - e.onset <= 10
        assert _in_truth(truth, e, "audio") and _in_truth(truth, e, "visual"), e
    # every class in every split (balanced: video i has class i mod C)
    per_split = defaultdict(Counter)
    for s, e in zip(m.samples, m.events, strict=True):
        per_split[s.split][e.label] += 1
    assert per_split["train"] == dict.fromkeys(names, 2)
    assert per_split["val"] == per_split["test"] == dict.fromkeys(names, 1)
    targets = m.segment_targets(m.samples)
    assert targets.shape == (12, 10, 3)
    assert targets.sum() == sum(e.offset - e.onset for e in m.events)


def _in_truth(truth: list[dict[str, str]], e, modality: str) -> bool:
    return any(
        t["video_id"] == e.sample_id
        and t["modality"] == modality
        and t["label"] == e.label
        and float(t["onset_s"]) == e.onset
        and float(t["offset_s"]) == e.offset
        for t in truth
    )


def test_llp_files_parse_with_the_llp_adapter(smoke: dict[str, Path]) -> None:
    root = smoke["llp"]
    m = llp.load({"format": "llp", "root": str(root), "classes_file": "categories.txt"})
    assert m.classes == [c.name for c in CLASS_BANK[:3]] and m.meta["anomalies"] == {}
    assert Counter(s.split for s in m.samples) == {"train": 6, "val": 3, "test": 3}
    split = {s.sample_id: s.split for s in m.samples}
    truth = _truth(root)
    dense = sorted(
        (e.sample_id, e.label, e.modality, e.onset, e.offset) for e in m.events if not e.is_weak
    )
    expected = sorted(
        (t["video_id"], t["label"], t["modality"], float(t["onset_s"]), float(t["offset_s"]))
        for t in truth
        if t["split"] in ("val", "test")
    )
    assert dense == expected and len(dense) > 0
    evaluated = [s for s in m.samples if s.split != "train"]
    for modality in ("audio", "visual"):
        seconds = sum(
            int(t["offset_s"]) - int(t["onset_s"])
            for t in truth
            if t["split"] != "train" and t["modality"] == modality
        )
        assert m.segment_targets(evaluated, (modality,)).sum() == seconds
    weak = defaultdict(set)
    for e in m.events:
        if e.is_weak:
            weak[e.sample_id].add(e.label)
    for sid in split:  # weak label = union of the dense classes, every split
        assert weak[sid] == {t["label"] for t in truth if t["video_id"] == sid}
    for t in truth:
        assert t["filename"].startswith(t["video_id"] + "_") and t["filename"].endswith(
            "_" + str(int(t["filename"].split("_")[-2]) + 10)
        )


def test_llp_modality_mix_and_event_counts() -> None:
    """Over the default-size plan: audio-only, visual-only and audio-visual classes all occur."""
    cfg = resolve({})
    plans = plan_part(cfg, "llp")
    kinds = Counter()
    n_classes = Counter()
    for p in (p for split in plans.values() for p in split):
        a = {t.class_index for t in p.audio}
        v = {t.class_index for t in p.visual}
        kinds.update({"audio-only": len(a - v), "visual-only": len(v - a), "both": len(a & v)})
        n_classes[len(a | v)] += 1
        assert all(
            0 <= t.onset < t.offset <= 10 and t.offset - t.onset >= 2 for t in [*p.audio, *p.visual]
        )
    total = sum(kinds.values())
    assert all(0.15 < kinds[k] / total < 0.65 for k in ("audio-only", "visual-only", "both")), kinds
    assert set(n_classes) == {1, 2, 3}


# -- determinism ----------------------------------------------------------------------
def test_same_config_gives_identical_files(tmp_path: Path) -> None:
    cfg = resolve(TINY)
    for part in ("ave", "llp"):
        generate(cfg, part, tmp_path / "a" / part)
        generate(cfg, part, tmp_path / "b" / part)
        files_a = sorted(
            p.relative_to(tmp_path / "a" / part)
            for p in (tmp_path / "a" / part).rglob("*")
            if p.is_file()
        )
        files_b = sorted(
            p.relative_to(tmp_path / "b" / part)
            for p in (tmp_path / "b" / part).rglob("*")
            if p.is_file()
        )
        assert files_a == files_b
        for rel in files_a:
            if rel.name == "synthetic.json":  # carries the generation time
                continue
            a, b = tmp_path / "a" / part / rel, tmp_path / "b" / part / rel
            if rel.suffix == ".mp4":
                fa, aa, _ = decode(a)
                fb, ab, _ = decode(b)
                assert np.array_equal(fa, fb) and np.array_equal(aa, ab), rel
            assert _sha(a) == _sha(b), rel
    other = resolve({**TINY, "seed": 1})
    assert (
        plan_part(other, "ave")["train"][0].video_id != plan_part(cfg, "ave")["train"][0].video_id
    )


def test_more_videos_extend_the_dataset_without_changing_it() -> None:
    small, big = resolve(TINY), resolve({**TINY, "ave": {"train": 6, "val": 2, "test": 1}})
    for split in ("train", "val", "test"):
        a, b = plan_part(small, "ave")[split], plan_part(big, "ave")[split]
        assert b[: len(a)] == a
    classes = make_classes(small.n_classes, small.difficulty.similarity)
    p = plan_part(small, "ave")["val"][0]
    assert np.array_equal(render_frames(small, classes, p), render_frames(big, classes, p))


def test_background_only_videos_are_training_videos_without_event(tmp_path: Path) -> None:
    base = resolve({**TINY, "ave": {"train": 40}})
    cfg = resolve({**TINY, "ave": {"train": 40, "background_only": 0.5}})
    plain, mixed = plan_part(base, "ave"), plan_part(cfg, "ave")
    assert mixed["val"] == plain["val"] and mixed["test"] == plain["test"]
    empty = [p for p in mixed["train"] if p.visual[0].offset == p.visual[0].onset]
    assert 10 <= len(empty) <= 30  # about half of 40
    ids = {p.video_id for p in empty}
    for p, q in zip(plain["train"], mixed["train"], strict=True):
        if q.video_id not in ids:
            assert p == q  # the other videos do not change
        else:  # no audio-visual track; a heard-only or seen-only trap at most
            assert len(q.visual) + len(q.audio) <= 3
            assert not {(t.onset, t.offset) for t in q.visual if t.offset > t.onset} & {
                (t.onset, t.offset) for t in q.audio if t.offset > t.onset
            }
    classes = make_classes(cfg.n_classes, cfg.difficulty.similarity)
    cfg_small = resolve({**TINY, "ave": {"train": 40, "val": 0, "test": 0, "background_only": 0.5}})
    plans = plan_part(cfg_small, "ave")
    from avpipe.datasets.synthetic import ave as synth_ave

    synth_ave.write_annotations(tmp_path, plans, classes)
    for name in ("valSet.txt", "testSet.txt"):
        (tmp_path / name).write_text("")
    m = ave.load({"format": "ave", "root": str(tmp_path), "probe": False})
    targets = m.video_targets(m.samples)
    assert {s.sample_id for s, t in zip(m.samples, targets, strict=True) if not t.any()} == ids
    assert m.meta["anomalies"]  # zero-length events are recorded, kept as background


# -- learnability -----------------------------------------------------------------------
def test_classes_are_learnable_and_hard_is_harder(tmp_path: Path) -> None:
    """Logistic regression on colour histograms + band energies of decoded 1-s segments.

    Short 4-s clips keep this fast; the full-size presets score alike
    (default 0.96, hard 0.69, chance 0.17).
    """
    sizes = {"duration_s": 4, "ave": {"train": 18, "val": 6, "test": 6}}
    scores = {}
    for preset in ("default", "hard"):
        cfg = resolve({"preset": preset, **sizes})
        generate(cfg, "ave", tmp_path / preset)
        scores[preset] = ave_foreground_accuracy(tmp_path / preset, cfg.fps, cfg.duration_s)
    (easy, chance, n), (hard, _, _) = scores["default"], scores["hard"]
    assert n >= 30 and chance == pytest.approx(1 / 6)
    assert easy >= 0.85
    assert chance + 0.3 <= hard <= 0.85
    assert easy - hard >= 0.15
