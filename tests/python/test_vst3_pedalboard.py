"""The release VST3 bundle (target/bundled/Moodscope.vst3) in Spotify's pedalboard.

pedalboard hosts VST3 plugins through JUCE, a second real host beside the CLAP test host
(crates/clap-test-host). It renders non-real-time, so Moodscope analyses synchronously
(nice-plug ProcessMode::Offline) and logs every window to MOODSCOPE_WINDOW_LOG.

Checks: the plugin loads and creates its parameters (names, ranges, units); real music
(Debian hyperrogue-music) passes bit for bit at several rates, buffer sizes, mono and stereo,
and so do NaN, Inf, denormals and full-scale noise; the reported latency is 0; parameter values
and the plugin state survive a round trip into a fresh instance; the moods it logs are sane; the
mood read-outs give the published mood when pedalboard reads the plugin's values; `Bypass` is the
VST3 bypass parameter (kIsBypass, read from the bundle with a few lines of ctypes, since
pedalboard does not show it) and passes the audio untouched, analysing or not as set.

Needs: `cargo xtask bundle moodscope --release`, `cargo xtask install-models`,
`apt-get install hyperrogue-music`, `pip install -r tests/python/requirements-host.txt`.
Run: `python3 -m pytest -q tests/python/test_vst3_pedalboard.py`. A missing piece fails; nothing
is skipped.
"""

import csv
import ctypes
import gc
import os
import platform
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
VST3 = TARGET / "bundled" / "Moodscope.vst3"
MODELS = ROOT / "models"
MUSIC = Path("/usr/share/hyperrogue/music/hr3-caves.ogg")
DEFAULT_MOODS = ["Happy", "Sad", "Calm", "Angry", "Scary"]  # the default readout's labels, in order
READ_OUTS = ["mood_1", "mood_2", "mood_3", "mood_4", "mood_5", "mood_6", "valence", "arousal", "music_presence"]

import pedalboard  # noqa: E402  (after the constants, so a missing bundle is named first)
from pedalboard.io import AudioFile  # noqa: E402


def require():
    assert VST3.is_dir(), f"{VST3} is missing: build it with `cargo xtask bundle moodscope --release`"
    assert (MODELS / "yamnet.onnx").is_file(), f"no models in {MODELS}: run `cargo xtask install-models`"
    assert MUSIC.is_file(), f"{MUSIC} is missing: `apt-get install hyperrogue-music`"


@pytest.fixture(scope="module")
def music():
    """12 s of real music (stereo, 44.1 kHz), from 30 s in."""
    require()
    with AudioFile(str(MUSIC)) as f:
        f.seek(int(30 * f.samplerate))
        audio = f.read(int(12 * f.samplerate))
        rate = f.samplerate
    assert audio.shape[0] == 2 and audio.dtype == np.float32
    return np.ascontiguousarray(audio), int(rate)


def load(window_log=None, models=MODELS):
    """A fresh plugin instance; the environment is read when an instance is created."""
    require()
    os.environ["MOODSCOPE_MODELS"] = str(models)
    if window_log is None:
        os.environ.pop("MOODSCOPE_WINDOW_LOG", None)
    else:
        os.environ["MOODSCOPE_WINDOW_LOG"] = str(window_log)
    return pedalboard.load_plugin(str(VST3))


def log_labels(log):
    """The mood labels of a window log, from its header: the columns between `denormals_flushed`
    and `raw_valence` (the published moods, in the head's order)."""
    with log.open() as f:
        header = next(csv.reader(f))
    return header[header.index("denormals_flushed") + 1 : header.index("raw_valence")]


def assert_bit_exact(inp, out, what):
    assert out.shape == inp.shape, f"{what}: shape {out.shape} != {inp.shape}"
    assert out.dtype == np.float32
    same = inp.view(np.uint32) == out.view(np.uint32)
    if not same.all():
        ch, frame = np.argwhere(~same)[0]
        raise AssertionError(f"{what}: {int((~same).sum())} samples changed, first at channel {ch} frame {frame}")


def test_loads_and_creates_its_parameters():
    plugin = load()
    assert plugin.name == "Moodscope"
    assert plugin.is_effect
    params = plugin.parameters
    assert list(params)[:6] == ["smoothing_s", "sensitivity", "window_hop", "backbone", "mood_set", "head"], list(
        params
    )
    # Then the bypass, the MIDI CC and OSC settings and the mood read-outs, last.
    assert list(params)[6:8] == ["bypass", "analyse_while_bypassed"], list(params)
    assert "midi_out" in params and "osc_out" in params, list(params)
    assert list(params)[-len(READ_OUTS):] == READ_OUTS, list(params)
    assert not plugin.bypass and plugin.analyse_while_bypassed
    assert [plugin.parameters[n].raw_value for n in READ_OUTS] == [0.0] * 6 + [0.5, 0.5, 0.0]
    assert plugin.valence == 0.0 and plugin.parameters["valence"].range[:2] == (-1.0, 1.0)
    assert params["smoothing_s"].name == "Smoothing"
    assert params["smoothing_s"].label.strip() == "s"
    assert params["smoothing_s"].range[:2] == (0.0, 30.0)
    assert plugin.smoothing_s == pytest.approx(2.0)
    assert params["sensitivity"].label.strip() == "%"
    assert plugin.sensitivity == pytest.approx(50.0)
    assert params["window_hop"].valid_values == ["Backbone's own", "0.24 s", "0.48 s", "0.96 s"]
    assert params["backbone"].valid_values == ["YAMNet", "VGGish"]
    assert params["mood_set"].valid_values == ["Five (with Calm)", "Four (the study's)", "Six (AudioSet)"]
    assert params["head"].valid_values == ["Recommended", "Uncalibrated", "Head file"]
    assert plugin.window_hop == "Backbone's own" and plugin.backbone == "YAMNet"
    assert plugin.mood_set == "Five (with Calm)" and plugin.head == "Recommended"


@pytest.mark.parametrize("rate", [22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [2, 1])
def test_music_passes_bit_exact(music, rate, channels):
    audio, _ = music
    # The music's samples, presented at each host rate (passthrough does not care what they mean).
    audio = audio[:channels, : rate * 6]
    plugin = load()
    for buffer_size in (512, 8192, 1000):
        out = plugin.process(audio, rate, buffer_size=buffer_size)
        assert_bit_exact(audio, out, f"{channels} ch at {rate} Hz, buffer {buffer_size}")
    assert plugin.reported_latency_samples == 0


def test_single_sample_buffers_pass_bit_exact(music):
    audio, rate = music
    audio = audio[:, : rate // 2]
    out = load().process(audio, rate, buffer_size=1)
    assert_bit_exact(audio, out, "buffer of 1")


def test_bad_input_passes_untouched(music):
    audio, rate = music
    audio = audio[:, : rate * 8].copy()
    second = rate
    audio[:, 1 * second : 2 * second] = np.nan
    audio[0, 2 * second : 3 * second] = np.inf
    audio[1, 2 * second : 3 * second] = -np.inf
    audio[:, 3 * second : 4 * second] = np.float32(1e-40)  # denormal
    noise = np.random.default_rng(7).uniform(-1.0, 1.0, size=(2, second)).astype(np.float32)
    audio[:, 4 * second : 5 * second] = noise
    audio[:, 5 * second : 5 * second + 100] = np.float32(1e30)
    out = load().process(audio, rate, buffer_size=512)
    assert_bit_exact(audio, out, "NaN/Inf/denormal/noise input")


def test_missing_models_still_pass_audio(music, tmp_path):
    audio, rate = music
    empty = tmp_path / "no-models"
    empty.mkdir()
    plugin = load(models=empty)
    out = plugin.process(audio[:, : rate * 3], rate, buffer_size=512)
    assert_bit_exact(audio[:, : rate * 3], out, "without models")


def test_parameters_and_state_round_trip():
    plugin = load()
    plugin.smoothing_s = 7.5
    plugin.sensitivity = 80.0
    plugin.window_hop = "0.96 s"
    # JUCE hands parameter changes to a VST3 plugin with the next processed block (as a DAW
    # does), so let one pass before asking for the state.
    plugin.process(np.zeros((2, 256), np.float32), 44100, buffer_size=256)
    state = plugin.raw_state
    assert len(state) > 0
    fresh = load()
    assert fresh.smoothing_s == pytest.approx(2.0)
    fresh.raw_state = state
    assert fresh.smoothing_s == pytest.approx(7.5, abs=0.01)
    assert fresh.sensitivity == pytest.approx(80.0, abs=0.5)
    assert fresh.window_hop == "0.96 s"
    assert fresh.raw_state == state


def test_published_moods_are_sane(music, tmp_path):
    audio, rate = music
    log = tmp_path / "windows.csv"
    plugin = load(window_log=log)
    out = plugin.process(audio, rate, buffer_size=512)
    assert_bit_exact(audio, out, "music with the window log on")
    # The render's last windows are analysed when the host deactivates the plugin.
    del plugin
    gc.collect()
    rows = list(csv.DictReader(log.open()))
    assert len(rows) >= 20, f"{len(rows)} windows for 12 s of music"
    moods = log_labels(log)
    assert moods == DEFAULT_MOODS, moods
    for row in rows:
        for prefix in ("raw_", ""):
            p = np.array([float(row[prefix + m]) for m in moods])
            assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), row
            assert abs(p.sum() - 1.0) < 1e-4, row
        # An offline render drops nothing: stream time is the window's own.
        assert float(row["audio_end_seconds"]) == float(row["end_seconds"])
    presence = np.array([float(r["raw_presence"]) for r in rows])
    assert presence.mean() > 0.6, f"music presence {presence.mean()} on music"
    assert [int(r["window"]) for r in rows] == list(range(len(rows)))


def read_rows(log):
    return list(csv.DictReader(log.open())) if log.exists() else []


def test_read_outs_give_the_published_mood(music, tmp_path):
    audio, rate = music
    log = tmp_path / "windows.csv"
    plugin = load(window_log=log)
    plugin.process(audio, rate, buffer_size=512)
    # The moods published during the render (its last windows come when pedalboard deactivates
    # the plugin); the read-outs hold the last one.
    rows = read_rows(log)
    assert len(rows) >= 20, len(rows)
    last = rows[-1]
    # JUCE, under pedalboard, keeps its own copy of each parameter's value and reads the plugin's
    # again only when the plugin reports a user edit (performEdit), asks for a rescan
    # (restartComponent) or when the state is set. nice-plug gives a plugin without an open editor
    # no way to do the first two (README, "Mood read-outs"), so have JUCE read the values again by
    # giving the plugin back its own state; then they are what the plugin answers to
    # getParamNormalized.
    before = [plugin.parameters[name].raw_value for name in READ_OUTS]
    plugin.raw_state = plugin.raw_state
    moods = log_labels(log)
    assert moods == DEFAULT_MOODS, moods
    # The default readout's five moods fill the first five slots, in its label order.
    for name, mood in zip(READ_OUTS, moods):
        assert plugin.parameters[name].raw_value == np.float32(last[mood]), (name, mood, last)
        assert getattr(plugin, name) == pytest.approx(float(last[mood]) * 100, abs=0.5)
    assert plugin.parameters["music_presence"].raw_value == np.float32(last["presence"])
    assert float(last["presence"]) > 0.5, last
    assert max(float(last[m]) for m in moods) > 0.2, last
    assert plugin.parameters["mood_6"].raw_value == 0.0, "no sixth mood in the default readout"
    # Valence and arousal, −1..1: the smoothed values published with the last window.
    for axis in ("valence", "arousal"):
        assert last[axis] != "", f"the default readout gives {axis}"
        value = float(last[axis])
        assert plugin.parameters[axis].raw_value == pytest.approx((value + 1) / 2, abs=1e-6), (axis, last)
        # pedalboard reads the value from the text, shown with two decimals (`+0.25`).
        assert getattr(plugin, axis) == pytest.approx(value, abs=0.006), (axis, last)
    # What JUCE showed before it read the values again: its cached defaults (this is what the
    # issue saw as "every mood reads 0").
    assert before == [0.0] * 6 + [0.5, 0.5, 0.0], before


# Steinberg's VST3 interfaces, as laid out on Linux: interface ids are the four 32-bit words
# big-endian; methods in declaration order after FUnknown's three.
def _tuid(*words):
    return b"".join(w.to_bytes(4, "big") for w in words)


_ICOMPONENT = _tuid(0xE831FF31, 0xF2D54301, 0x928EBBEE, 0x25697802)
_IEDITCONTROLLER = _tuid(0xDCD7BBE3, 0x7742448D, 0xA874AACC, 0x979C759E)
K_CAN_AUTOMATE, K_IS_READ_ONLY, K_IS_HIDDEN, K_IS_BYPASS = 1, 2, 16, 1 << 16


class _ParameterInfo(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("title", ctypes.c_uint16 * 128),
        ("short_title", ctypes.c_uint16 * 128),
        ("units", ctypes.c_uint16 * 128),
        ("step_count", ctypes.c_int32),
        ("default_normalized_value", ctypes.c_double),
        ("unit_id", ctypes.c_int32),
        ("flags", ctypes.c_int32),
    ]


def _method(obj, index, restype, *argtypes):
    vtable = ctypes.cast(obj, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p)))[0]
    return ctypes.CFUNCTYPE(restype, ctypes.c_void_p, *argtypes)(vtable[index])


def vst3_parameter_flags():
    """{title: ParameterInfo flags}, from the bundle's IEditController, as a VST3 host reads them."""
    require()
    so = VST3 / "Contents" / f"{platform.machine()}-linux" / "Moodscope.so"
    lib = ctypes.CDLL(str(so))
    lib.GetPluginFactory.restype = ctypes.c_void_p
    factory = lib.GetPluginFactory()
    assert factory
    component = ctypes.c_void_p()
    create = _method(factory, 6, ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
    assert create(factory, b"MoodscopeAnalyse", _ICOMPONENT, ctypes.byref(component)) == 0
    controller = ctypes.c_void_p()
    query = _method(component, 0, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
    assert query(component, _IEDITCONTROLLER, ctypes.byref(controller)) == 0
    count = _method(controller, 8, ctypes.c_int32)(controller)
    get_info = _method(controller, 9, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(_ParameterInfo))
    flags = {}
    for i in range(count):
        info = _ParameterInfo()
        assert get_info(controller, i, ctypes.byref(info)) == 0
        title = bytes(info.title).decode("utf-16-le").split("\0")[0]
        flags[title] = info.flags
    for obj in (controller, component, factory):
        _method(obj, 2, ctypes.c_uint32)(obj)
    return flags


def test_bypass_is_the_vst3_bypass_parameter():
    flags = vst3_parameter_flags()
    bypass = [title for title, f in flags.items() if f & K_IS_BYPASS]
    assert bypass == ["Bypass"], flags
    assert flags["Bypass"] & K_CAN_AUTOMATE and not flags["Bypass"] & K_IS_HIDDEN
    assert not flags["Analyse while bypassed"] & K_CAN_AUTOMATE
    for title in ["Mood 1", "Mood 6", "Valence", "Arousal", "Music presence"]:
        # Shown, not automatable; nice-plug marks no parameter read-only without hiding it.
        assert not flags[title] & (K_CAN_AUTOMATE | K_IS_READ_ONLY | K_IS_HIDDEN), (title, flags[title])


def test_bypassed_audio_passes_and_the_analysis_follows_the_setting(music, tmp_path):
    audio, rate = music
    audio = audio[:, : rate * 8]
    plain_log, bypassed_log, paused_log = (tmp_path / f"{n}.csv" for n in ("plain", "bypassed", "paused"))
    plugin = load(window_log=plain_log)
    plugin.process(audio, rate, buffer_size=512)
    del plugin
    gc.collect()

    plugin = load(window_log=bypassed_log)
    plugin.bypass = True
    out = plugin.process(audio, rate, buffer_size=512)
    assert_bit_exact(audio, out, "bypassed, analysing")
    assert plugin.bypass
    del plugin
    gc.collect()
    # "Analyse while bypassed" is on by default: the same analysis as without the bypass.
    plain, bypassed = read_rows(plain_log), read_rows(bypassed_log)
    assert len(plain) >= 12 and bypassed == plain

    plugin = load(window_log=paused_log)
    plugin.analyse_while_bypassed = False
    plugin.bypass = True
    out = plugin.process(audio, rate, buffer_size=512)
    assert_bit_exact(audio, out, "bypassed, not analysing")
    del plugin
    gc.collect()
    assert not paused_log.exists(), "nothing is analysed while bypassed with the analysis off"
