"""The commands of README.md, CHANGELOG.md and docs/*.md, run as the pages show them, and the pages' links.

Every fenced block of these pages says what it is in its info string (the words after the opening fence):

- ``sh offline``: commands that run on this machine, without AWS, in seconds to a minute. This module runs
  them. The block right after it must be a ``text output`` block: lines the commands print, in order, each
  matched against a whole line of their output (stdout and stderr together, split at newlines and carriage
  returns), other lines allowed between them; ``...`` inside a line stands for any text, and a line of only
  ``...`` marks where lines were left out.
- ``sh long PATH ...``: commands that run offline but take minutes. The words after ``long`` name the
  tests (files or folders of this repository) that run the same work; each must exist.
- ``sh aws``: needs an AWS account. ``sh image``: needs Docker, or root with buildah (``pytest -m image``
  runs the images). ``sh benchmark``: measures on the real data sets and prints figures; no test runs it.
- ``text``, ``json``, ``yaml``: not commands.

How the ``sh offline`` blocks run: page after page in reading order (README.md first, then docs/ as READ_ORDER
lists them), block after block, each with ``bash -e -o pipefail``, all in one fresh temporary folder that links
the repository's tracked top-level entries, ``.venv`` and ``node_modules`` (so paths resolve as from the
repository root, a page may use what an earlier one made, as a reader would, e.g. ``make demo``'s model, and
what the commands write stays out of the tree), with
``PYTHONUNBUFFERED=1`` (output in the order it is written) and ``DEMO_EPOCHS=1`` (``make demo`` trains one
epoch instead of five). Port 8080 in a block is replaced by a free port, which ``serve`` is given as
``SAGEMAKER_BIND_TO_PORT``, since other tests on the machine may hold 8080. Whatever a block started is
stopped when it ends.

``make test`` is the suite itself (``sh long tests/``); ``make demo`` runs here, with one epoch.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def page_name(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


READ_ORDER = ["README.md", "docs/data.md", "docs/model.md", "docs/container.md", "docs/deploy.md",
              "docs/operations.md", "docs/benchmarks.md", "CHANGELOG.md"]
PAGES = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CHANGELOG.md", *(REPO_ROOT / "docs").glob("*.md")],
               key=lambda page: (READ_ORDER + [page_name(page)]).index(page_name(page)))
README_LIMIT = 12_000
SHELL_TAGS = {"offline", "long", "aws", "image", "benchmark"}
OTHER_LANGUAGES = {
    "text",
    "json",
    "yaml",
    "js",
}  # deploy.md's page snippet: tests/infra/test_browser_snippet.py runs it
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
BLOCK_TIMEOUT_S = 540


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its info string's words, its text (fence indent removed), its first line."""

    words: tuple[str, ...]
    text: str
    line: int

    @property
    def kind(self) -> str:
        return " ".join(self.words[:2]) if self.words[:1] == ("sh",) else " ".join(self.words)


def fenced_blocks(markdown: str) -> list[Block]:
    """The page's fenced blocks in order; an unclosed fence is an error naming its line."""
    blocks, lines, at = [], markdown.splitlines(), 0
    while at < len(lines):
        opening = FENCE.match(lines[at])
        if not opening:
            at += 1
            continue
        indent, body = opening["indent"], []
        for end in range(at + 1, len(lines)):
            if lines[end].strip() == "```" and lines[end].startswith(indent):
                break
            body.append(lines[end][len(indent):])
        else:
            raise ValueError(f"line {at + 1}: the fence opened here is never closed")
        blocks.append(Block(tuple(opening["info"].split()), "\n".join(body) + "\n", at + 1))
        at = end + 1
    return blocks


def line_pattern(line: str) -> re.Pattern:
    """One expected line as a pattern for a whole output line; '...' stands for any text."""
    return re.compile(".*".join(map(re.escape, line.split("..."))))


def output_matches(expected: str, output: str) -> bool:
    """Whether the output holds the expected lines in order, each matching a whole line (see the docstring)."""
    lines = iter(re.split(r"\r\n|\r|\n", output))
    wanted = [line_pattern(line) for line in expected.splitlines() if line.strip() != "..."]
    return all(any(pattern.fullmatch(line) for line in lines) for pattern in wanted)


def problems(blocks: list[Block]) -> list[str]:
    """What breaks the convention of the module's docstring, block by block."""
    found = []
    for index, block in enumerate(blocks):
        follows = blocks[index - 1] if index else None
        if block.words[:1] == ("sh",):
            if block.words[1:2] == () or block.words[1] not in SHELL_TAGS:
                found.append(f"line {block.line}: a shell block needs one of {sorted(SHELL_TAGS)} after 'sh'")
            elif block.words[1] == "long":
                missing = [path for path in block.words[2:] if not (REPO_ROOT / path).exists()]
                if not block.words[2:] or missing:
                    found.append(f"line {block.line}: 'sh long' must name the tests that run it; missing: {missing}")
            elif block.words[1] == "offline":
                following = blocks[index + 1] if index + 1 < len(blocks) else None
                if following is None or following.kind != "text output":
                    found.append(f"line {block.line}: an 'sh offline' block needs a 'text output' block after it")
        elif block.kind == "text output":
            if follows is None or follows.kind != "sh offline":
                found.append(f"line {block.line}: a 'text output' block belongs right after an 'sh offline' block")
        elif block.words[:1] == () or block.words[0] not in OTHER_LANGUAGES or len(block.words) > 1:
            found.append(f"line {block.line}: say what the block is: 'sh TAG' or one of {sorted(OTHER_LANGUAGES)}")
    return found


def offline_runs(blocks: list[Block]) -> list[tuple[Block, str]]:
    """Each ``sh offline`` block with the output block that follows it."""
    return [(block, blocks[index + 1].text) for index, block in enumerate(blocks[:-1]) if block.kind == "sh offline"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stand_in_root(folder: Path) -> Path:
    """A folder that links the repository's tracked top-level entries, .venv and node_modules."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    names = {path.split("/", 1)[0] for path in tracked.decode().split("\0") if path} | {".venv", "node_modules"}
    for name in sorted(names):
        if (REPO_ROOT / name).exists():
            (folder / name).symlink_to(REPO_ROOT / name)
    return folder


def run_block(block: Block, folder: Path) -> subprocess.CompletedProcess:
    """One block in ``folder``, 8080 swapped for a free port; every process it started is stopped afterwards."""
    port = str(free_port())
    env = dict(os.environ, PYTHONUNBUFFERED="1", DEMO_EPOCHS="1", SAGEMAKER_BIND_TO_PORT=port)
    process = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.text.replace("8080", port)], cwd=folder,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"line {block.line}: still running after {BLOCK_TIMEOUT_S} s; output:\n{output[-4000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(block.text, process.returncode, output)


# --- the convention ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=page_name)
def test_every_block_says_what_it_is(page):
    assert problems(fenced_blocks(page.read_text())) == []


def test_the_readme_is_short():
    assert len((REPO_ROOT / "README.md").read_text()) < README_LIMIT


def test_untagged_and_orphan_blocks_are_refused():
    page = "```\nls\n```\n```sh offline\nls\n```\n```sh long no/such/test.py\nmake x\n```\n```text output\nx\n```\n"
    found = problems(fenced_blocks(page))
    assert [line.split(":")[0] for line in found] == ["line 1", "line 4", "line 7", "line 10"]


def test_an_unclosed_fence_names_its_line():
    with pytest.raises(ValueError, match="line 2"):
        fenced_blocks("text\n```sh offline\nls\n")


def test_indented_blocks_lose_their_indent():
    block, = fenced_blocks("- item\n\n  ```sh aws\n  aws s3 ls\n  ```\n")
    assert (block.kind, block.text) == ("sh aws", "aws s3 ls\n")


@pytest.mark.parametrize("output, matches", [
    ("train: 10 events\nepoch 1: loss 3.1\nmodel written to /tmp/x/model (training 2.0 s)\n", True),
    ("noise\r\ntrain: 10 events\r50%\rmodel written to /tmp/x/model (training 2.0 s)\n", True),
    ("model written to /tmp/x/model (training 2.0 s)\ntrain: 10 events\n", False),
    ("train: 10 events\n", False),
    ("train: 10 events\nmodel kept in /tmp/x/model\n", False),
    ("xtrain: 10 events\nmodel written to /tmp/x/model (training 2.0 s)\n", False),
])
def test_output_lines_match_in_order_and_whole(output, matches):
    expected = "...\ntrain: ... events\n...\nmodel written to .../model (training ...)\n"
    assert output_matches(expected, output) is matches


# --- the links ----------------------------------------------------------------------------------------------

def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but '-' and '_' dropped, spaces as '-'."""
    outside = re.sub(r"^ *```.*?^ *```$", "", markdown, flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", outside, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=page_name)
def test_links_reach_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            broken.append(target)
    assert broken == []


# --- the commands -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_offline_commands_run_and_print_what_the_pages_show(tmp_path):
    folder = stand_in_root(tmp_path)
    runs = [
        (page, block, expected) for page in PAGES for block, expected in offline_runs(fenced_blocks(page.read_text()))
    ]
    assert runs, "no 'sh offline' block found"
    for page, block, expected in runs:
        result = run_block(block, folder)
        where = f"{page_name(page)} line {block.line}"
        assert result.returncode == 0, f"{where}: exit {result.returncode}; output:\n{result.stdout[-4000:]}"
        assert output_matches(expected, result.stdout), (
            f"{where}: the output lacks the lines the page shows:\n{expected}\noutput:\n{result.stdout[-4000:]}")
