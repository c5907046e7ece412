"""Reads a file's tags with mutagen (a tag reader Moodscope did not write) and prints them as JSON:
{"format": "MP3", "tags": {"TMOO": ["Calm"], "TXXX:MOODSCOPE_MOOD": ["Calm"], ...}}.

ID3v2 frames (MP3, WAV, AIFF) by mutagen's frame key ("TMOO", "TXXX:DESC", "COMM::eng"),
Vorbis comments (FLAC, Ogg Vorbis, Opus) by upper-case field name, MP4 atoms by their key
("----:com.apple.iTunes:MOOD", "\u00a9cmt"). Used by tests/cli_tag.rs.
"""

import json
import sys

import mutagen
from mutagen.id3 import ID3


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def main(path):
    f = mutagen.File(path)
    if f is None:
        raise SystemExit(f"mutagen does not know {path}")
    tags = {}
    if f.tags is not None:
        if isinstance(f.tags, ID3):
            for key, frame in f.tags.items():
                values = getattr(frame, "text", None)
                if values is not None:
                    tags[key] = [text(v) for v in values]
        else:
            for key, values in f.tags.items():
                if not isinstance(values, list):
                    values = [values]
                name = key if key.startswith("----") or key.startswith("\u00a9") else key.upper()
                tags[name] = [text(v) for v in values]
    print(json.dumps({"format": type(f).__name__, "tags": tags}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
