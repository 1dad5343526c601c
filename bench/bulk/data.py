"""The flat pairs an import reads: deterministic, written as JSON Lines and as Parquet."""

import json
import random
import time
from pathlib import Path

SEED = 20250
PARQUET_ROW_GROUP = 100_000
RESPONSE_POOL = 2**17
PROMPT_POOL = 2**15


def sentence_pool(rng: random.Random, size: int = 4096) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words = ["the", "a", "of", "to", "and", "is", "in", "that", "it", "for", "with", "as", "on", "this", "by"]
    words += [
        "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 4))) for _ in range(900)
    ]
    words += ["café", "naïve", "über", "日本語", "données", "`code`", "**bold**", "x = 1", "→"]
    pool = []
    for _ in range(size):
        sentence = " ".join(rng.choices(words, k=rng.randint(5, 18)))
        pool.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "!", "?", ":\n"]))
    return pool


def text_of(rng: random.Random, pool: list[str], low: int, high: int) -> str:
    wanted = rng.randint(low, high)
    parts, length = [], 0
    for sentence in rng.choices(pool, k=24):
        parts.append(sentence)
        length += len(sentence) + 1
        if length >= wanted:
            break
    return " ".join(parts)


def generate(folder: Path, rows: int) -> dict[str, Path]:
    """Write `rows` flat pairs as JSONL and Parquet; the same seed gives the same rows (a prefix of larger files).

    Texts come from pools (131,072 responses of 200-600 characters, 32,768 prompt bodies) so
    that a million rows take seconds to write; every row has its own id and prompt number,
    and its two responses always differ.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(SEED)
    sentences = sentence_pool(rng)
    responses = [text_of(rng, sentences, 200, 600) for _ in range(RESPONSE_POOL)]
    prompts = [text_of(rng, sentences, 40, 300) for _ in range(PROMPT_POOL)]
    models = [f"model-{letter}" for letter in "abcdefgh"]
    jsonl, parquet = folder / f"pairs-{rows}.jsonl", folder / f"pairs-{rows}.parquet"
    columns = ("id", "prompt", "response_a", "response_b", "model_a", "model_b")
    schema = pa.schema([(name, pa.string()) for name in columns])
    chunk: dict[str, list[str]] = {name: [] for name in columns}
    randrange = rng.randrange
    with jsonl.open("w", encoding="utf-8") as out, pq.ParquetWriter(parquet, schema) as writer:
        for n in range(1, rows + 1):
            a = randrange(RESPONSE_POOL)
            b = (a + 1 + randrange(RESPONSE_POOL - 1)) % RESPONSE_POOL
            m = randrange(len(models))
            row = {
                "id": f"r{n}",
                "prompt": f"Question {n}: {prompts[randrange(PROMPT_POOL)]}",
                "response_a": responses[a],
                "response_b": responses[b],
                "model_a": models[m],
                "model_b": models[(m + 1 + randrange(len(models) - 1)) % len(models)],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            for name in columns:
                chunk[name].append(row[name])
            if len(chunk["id"]) == PARQUET_ROW_GROUP or n == rows:
                writer.write_table(pa.table(chunk, schema=schema))
                chunk = {name: [] for name in columns}
    return {"jsonl": jsonl, "parquet": parquet}


def generate_files(folder: Path, sizes: list[int]) -> dict[int, dict[str, Path]]:
    files = {}
    for rows in sizes:
        t0 = time.perf_counter()
        files[rows] = generate(folder, rows)
        print(
            f"Generated {rows:,} pairs in {time.perf_counter() - t0:.1f} s: JSONL "
            f"{files[rows]['jsonl'].stat().st_size / 2**20:,.0f} MB, Parquet "
            f"{files[rows]['parquet'].stat().st_size / 2**20:,.0f} MB",
            flush=True,
        )
    return files
