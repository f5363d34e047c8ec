"""Quiz answer keys: hashed answers, and explanations only the right answer unlocks.

The questions are public (each unit's unit.toml). The answers live in plain
text only in the marked source, course/source/answers.toml (and the finished
app made from it, solution/answers.toml), the explanations only in
course/source/quiz_explanations.toml; `python3 -m course quiz-keys` turns them
into units/NN-*/keys.toml: a SHA-256 of each normalised answer, and the
explanation encrypted with a key derived from that answer. A learner who
answers right sees why; a wrong answer reveals nothing.
"""
import base64
import hashlib
import tomllib

from course import manifest
from course.stages import SOURCE

KEYS_FILE = "keys.toml"
EXPLANATIONS_FILE = "quiz_explanations.toml"


def normalise(answer):
    """'c, A' -> 'ac': the chosen letters, lower case, sorted, once each."""
    return "".join(sorted({ch for ch in str(answer).lower() if ch.isalpha()}))


def _secret(unit, qid, answer):
    return f"{unit.code}/{qid}/{normalise(answer)}".encode()


def answer_hash(unit, qid, answer):
    return hashlib.sha256(b"answer:" + _secret(unit, qid, answer)).hexdigest()


def _keystream(unit, qid, answer, length):
    return hashlib.shake_256(b"explain:" + _secret(unit, qid, answer)).digest(length)


def encrypt(unit, qid, answer, text):
    data = text.encode()
    stream = _keystream(unit, qid, answer, len(data))
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream))).decode()


def decrypt(unit, qid, answer, token):
    data = base64.b64decode(token)
    stream = _keystream(unit, qid, answer, len(data))
    return bytes(a ^ b for a, b in zip(data, stream)).decode(errors="replace")


def check(unit, answers):
    """[(question, right?, explanation or '')] for one unit, given the learner's
    answers.toml as a dict."""
    given = answers.get(f"unit_{unit.code}", {})
    results = []
    for q in unit.quiz:
        answer = given.get(q.id, "")
        right = bool(normalise(answer)) and answer_hash(unit, q.id, answer) == q.key
        results.append((q, right, decrypt(unit, q.id, answer, q.explanation) if right else ""))
    return results


def write_keys(numbers=None):
    """Regenerate the keys.toml of the given units (default: all) from course/source/;
    return the files written."""
    answers = tomllib.loads((SOURCE / manifest.ANSWERS_FILE).read_text())
    explanations_path = SOURCE / EXPLANATIONS_FILE
    explanations = tomllib.loads(explanations_path.read_text()) if explanations_path.exists() else {}
    written = []
    for unit in manifest.units():
        if numbers and unit.number not in numbers:
            continue
        section = f"unit_{unit.code}"
        lines = ["# Made by `python3 -m course quiz-keys` from course/source/; do not edit by hand."]
        for q in unit.quiz:
            answer = answers.get(section, {}).get(q.id)
            if not answer:
                raise ValueError(f"course/source/answers.toml has no answer for [{section}] {q.id}")
            why = explanations.get(section, {}).get(q.id, "")
            lines += ["", f"[{q.id}]", f'key = "{answer_hash(unit, q.id, answer)}"',
                      f'explanation = "{encrypt(unit, q.id, answer, why)}"']
        path = unit.folder / KEYS_FILE
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written
