"""Print every upstream `file:line` that the protocol presets cite (configs/protocol/*.yaml, benchmark/protocol.py)
with the lines it cites, read from local git mirrors of the cited repositories at the cited commits, so a reader
can check that they say what the presets claim. Exits 1 when a cited repository, commit, file or line is missing.

A preset's comment names its repository and commit ("owner/name at commit SHA", optionally "(scripts at SHA)" for
paths under scripts/); a citation is `path:N`, `path:N-M`, a bare `path` (the file must exist) or `:N` (the file
named last); a short path (`semantic_wrapper.py`) is the file named earlier with that ending, else the only one.

Not part of the package. Usage (a mirror is a git directory, bare or not, holding the cited commits):
    python tools/check_citations.py --mirrors DIR         # DIR/<owner>+<name>/repo, DIR/<owner>+<name> or DIR/<name>
    python tools/check_citations.py --mirror fcdl94/MiB=/path/to/MiB.git ...
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "configs" / "protocol").glob("*.yaml")) + [REPO / "benchmark" / "protocol.py"]
HEADER = re.compile(r"\b([\w.-]+/[\w.-]+) at commit ([0-9a-f]{7,40})\b")
FOLDER_COMMIT = re.compile(r"\((\w+)/? at ([0-9a-f]{7,40})\)")
CITATION = re.compile(r"(?P<path>(?<![\w.@/-])[A-Za-z_][\w./-]*\.(?:py|sh|yaml|yml|json|txt))"  # path[:N[-M]]
                      r"(?::(?P<a>\d+)(?:-(?P<b>\d+))?)?"
                      r"|(?<=[\s(/,;]):(?P<ba>\d+)(?:-(?P<bb>\d+))?")  # :N[-M], of the file named last


@dataclass
class Citation:
    source: str  # this project's file holding the citation
    path: str  # as written
    first: int | None
    last: int | None


@dataclass
class Preset:
    source: str
    repository: str
    commit: str
    folder_commits: dict[str, str] = field(default_factory=dict)  # "scripts" -> SHA for paths under it
    citations: list[Citation] = field(default_factory=list)


def comment_text(path: Path) -> str:
    """The prose that may cite: a YAML file's comments, a Python file's whole text."""
    text = path.read_text()
    if path.suffix == ".py":
        return text
    return "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)


def parse(path: Path) -> Preset | None:
    """The preset's repository, commit and citations; None when the file cites no upstream repository."""
    text = comment_text(path)
    header = HEADER.search(text)
    if header is None:
        return None
    preset = Preset(str(path.relative_to(REPO)), header.group(1), header.group(2),
                    dict(FOLDER_COMMIT.findall(text)))
    body = text[header.end():]
    current = None
    for match in CITATION.finditer(body):
        if match.group("path"):
            current = match.group("path")
            first, last = match.group("a"), match.group("b")
        else:
            if current is None:
                raise SystemExit(f"error: {preset.source}: ':{match.group('ba')}' cites no file named before it")
            first, last = match.group("ba"), match.group("bb")
        preset.citations.append(Citation(preset.source, current, int(first) if first else None,
                                         int(last or first) if first else None))
    return preset


def git(mirror: Path, *args: str) -> str:
    result = subprocess.run(["git", f"--git-dir={mirror}", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise LookupError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git failed")
    return result.stdout


def find_mirror(repository: str, mirrors: dict[str, Path], roots: list[Path]) -> Path:
    if repository in mirrors:
        candidates = [mirrors[repository]]
    else:
        owner, name = repository.split("/")
        candidates = [root / sub for root in roots for sub in (f"{owner}+{name}/repo", f"{owner}+{name}", name)]
    for candidate in candidates:
        for git_dir in (candidate / ".git", candidate):
            if git_dir.is_dir() and (git_dir / "HEAD").exists():
                return git_dir
    raise LookupError(f"no mirror of {repository} (give --mirror {repository}=GITDIR or --mirrors DIR)")


class Resolver:
    """Files of one commit; a short path resolves to a full one named earlier, else to the only one ending so."""

    def __init__(self, mirror: Path, commit: str) -> None:
        self.mirror, self.commit = mirror, commit
        self.files = git(mirror, "ls-tree", "-r", "--name-only", commit).splitlines()
        self.named: list[str] = []

    def resolve(self, path: str) -> str:
        if path in self.files:
            self.named.append(path)
            return path
        earlier = [full for full in reversed(self.named) if full.endswith("/" + path)]
        if earlier:
            return earlier[0]
        matches = [full for full in self.files if full.endswith("/" + path)]
        if len(matches) != 1:
            raise LookupError(f"{path}: {'no file' if not matches else f'{len(matches)} files'} at {self.commit[:12]} "
                              f"end so{': ' + ', '.join(matches) if matches else ''}")
        self.named.append(matches[0])
        return matches[0]

    def lines(self, path: str) -> list[str]:
        return git(self.mirror, "show", f"{self.commit}:{path}").splitlines()


def check(preset: Preset, mirrors: dict[str, Path], roots: list[Path], out) -> int:
    """Print the preset's citations with their lines; the number of citations that could not be read."""
    print(f"=== {preset.source}: {preset.repository} @ {preset.commit}"
          + "".join(f", {folder}/ @ {sha}" for folder, sha in preset.folder_commits.items()), file=out)
    try:
        mirror = find_mirror(preset.repository, mirrors, roots)
        resolvers = {sha: Resolver(mirror, sha) for sha in {preset.commit, *preset.folder_commits.values()}}
    except LookupError as error:
        print(f"  MISSING {error}", file=out)
        return len(preset.citations) or 1
    failures = 0
    for citation in preset.citations:
        folder = citation.path.split("/", 1)[0]
        resolver = resolvers[preset.folder_commits.get(folder, preset.commit)]
        try:
            full = resolver.resolve(citation.path)
            where = f"{full}@{resolver.commit[:8]}"
            if citation.first is None:
                print(f"--- {where} (file cited, no line)", file=out)
                continue
            lines = resolver.lines(full)
            if citation.last > len(lines) or citation.first < 1 or citation.last < citation.first:
                raise LookupError(f"{full} has {len(lines)} lines, cited {citation.first}-{citation.last}")
        except LookupError as error:
            print(f"  MISSING {error}", file=out)
            failures += 1
            continue
        span = f"{citation.first}" + (f"-{citation.last}" if citation.last != citation.first else "")
        print(f"--- {where}:{span}", file=out)
        for number in range(citation.first, citation.last + 1):
            print(f"  {number:5d} | {lines[number - 1]}", file=out)
    return failures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, action="append", default=[],
                        help="folder of mirrors: DIR/<owner>+<name>/repo, DIR/<owner>+<name> or DIR/<name>")
    parser.add_argument("--mirror", action="append", default=[], metavar="OWNER/NAME=GITDIR",
                        help="one repository's git directory (or work tree)")
    parser.add_argument("files", nargs="*", type=Path, help=f"files to check (default: configs/protocol/*.yaml, "
                                                             f"benchmark/protocol.py)")
    args = parser.parse_args(argv)
    mirrors = {}
    for item in args.mirror:
        name, sep, path = item.partition("=")
        if not sep or name.count("/") != 1:
            parser.error(f"--mirror {item}: expected OWNER/NAME=GITDIR")
        mirrors[name] = Path(path)
    presets = []
    for path in args.files or SOURCES:
        preset = parse(path.resolve())
        if preset is None:
            shown = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
            print(f"=== {shown}: names no upstream repository at a commit, so cites no upstream line")
        else:
            presets.append(preset)
    failures = sum(check(preset, mirrors, args.mirrors, sys.stdout) for preset in presets)
    cited = sum(len(preset.citations) for preset in presets)
    print(f"{cited} citations in {len(presets)} files, {failures} missing")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
