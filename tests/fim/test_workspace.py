"""The workspace index: what is never read, what a file offers, what a cursor gets, and the watch.

Real files under ``tmp_path`` and real ``watchfiles``; no model (token counts are a
characters-based stand-in).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest

from fim.workspace import FileFilter, RecentChunks, Workspace, WorkspaceIndex, WorkspaceSettings, choose
from fim.workspace.choose import current_entry
from fim.workspace.index import make_entry, resolve_imports
from fim.workspace.symbols import definitions

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
)
SECRET_FILES = {
    ".env": "API_TOKEN = 'sk-live-env'\n",
    ".env.production": "API_TOKEN = 'sk-live-prod'\n",
    "deploy/server.pem": "certificate = 'sk-live-pem'\n",
    "deploy/server.key": "key = 'sk-live-key'\n",
    "home/id_rsa": "rsa = 'sk-live-rsa'\n",
    "home/id_rsa.py": "rsa = 'sk-live-rsa-py'\n",
    "store.p12": "p12 = 'sk-live-p12'\n",
    ".npmrc": "token = 'sk-live-npm'\n",
    ".pypirc": "token = 'sk-live-pypi'\n",
    "credentials.py": "TOKEN = 'sk-live-credentials'\n",
    "secrets.ts": "export const TOKEN = 'sk-live-secrets-ts'\n",
    "pkg/looks_normal.py": f'KEY = """{PRIVATE_KEY}"""  # sk-live-content\n',
}
#: The secrets told by their path (a buffer of them is refused whatever it holds).
SECRET_PATHS = [name for name in SECRET_FILES if name != "pkg/looks_normal.py"]


def count(text: str) -> int:
    return len(text) // 3 + 1


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@contextlib.contextmanager
def running(root: Path, settings: WorkspaceSettings) -> Iterator[Workspace]:
    """A workspace over ``root`` whose first scan is done and whose watch runs."""
    workspace = Workspace(settings)
    workspace.add_root(root)
    try:
        assert workspace.wait_until_watching()
        yield workspace
    finally:
        workspace.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/models.py": (
                '"""Models."""\n\n\nclass Invoice:\n    """An invoice to a customer."""\n\n'
                "    def __init__(self, customer_name: str, amount_cents: int) -> None:\n"
                "        self.customer_name = customer_name\n        self.amount_cents = amount_cents\n\n"
                "    def mark_paid(self, when: str) -> None:\n        self.paid_on = when\n"
                "        return None\n\n\nTAX_RATE = 0.2\n"
            ),
            "pkg/billing.py": (
                "from .models import Invoice\n\n\ndef total_due(invoice: Invoice) -> int:\n    return "
            ),
            "pkg/unrelated.py": "def helper_nobody_uses() -> None:\n    pass\n",
            **SECRET_FILES,
            ".gitignore": "generated/\n*.gen.py\n!.env\n!*.pem\n",
            "generated/api.py": "GENERATED = 'sk-live-gitignored'\n",
            "pkg/table.gen.py": "GEN = 'sk-live-gitignored-glob'\n",
            "sub/.gitignore": "local_only.py\n",
            "sub/local_only.py": "LOCAL = 'sk-live-nested-gitignore'\n",
            "sub/kept.py": "KEPT = 1\n",
            "node_modules/lib/index.js": "export const NODE = 'sk-live-node-modules'\n",
            ".git/hooks/pre-commit.py": "HOOK = 'sk-live-git'\n",
            "env/pyvenv.cfg": "home = /usr\n",
            "env/lib/site.py": "VENV = 'sk-live-venv'\n",
            "build/lib/out.py": "BUILT = 'sk-live-build'\n",
            "private/notes.py": "NOTE = 'sk-live-exclude-globs'\n",
            "big.py": "X = 1\n" + "#" * 300_000 + "\n",
        },
    )
    (tmp_path / "blob.py").write_bytes(b"BLOB = 'sk-live-binary'\x00\x01\x02")
    return tmp_path


# ---------------------------------------------------------------------- never read
def test_secrets_and_excluded_files_are_never_indexed(project: Path) -> None:
    index = WorkspaceIndex(project, FileFilter(project, ["private/"]))
    index.scan()
    indexed = {path.as_posix() for path in index.entries()}
    assert indexed == {
        "pkg/__init__.py",
        "pkg/models.py",
        "pkg/billing.py",
        "pkg/unrelated.py",
        "sub/kept.py",
    }
    assert not any("sk-live" in entry.text for entry in index.entries().values())


@pytest.mark.parametrize("name", sorted(SECRET_FILES))
def test_every_secret_is_excluded_whatever_gitignore_says(project: Path, name: str) -> None:
    file_filter = FileFilter(project)
    assert file_filter.read_text(project / name) is None


def test_an_excluded_buffer_never_enters_the_index(project: Path) -> None:
    index = WorkspaceIndex(project, FileFilter(project, ["private/"]))
    index.scan()
    for name in [*SECRET_PATHS, "generated/api.py", "private/notes.py", "node_modules/lib/index.js"]:
        assert not index.set_buffer(project / name, "def leaked():\n    return 'sk-live-buffer'\n")
    # A normal file's buffer whose unsaved text holds a private key is refused too.
    assert not index.set_buffer(project / "pkg/models.py", PRIVATE_KEY)
    assert not any(
        "sk-live" in entry.text or "PRIVATE KEY" in entry.text for entry in index.entries().values()
    )


# ---------------------------------------------------------------------- what a file offers
def test_python_class_summary_keeps_fields_and_signatures_not_bodies(project: Path) -> None:
    found = {d.name: d for d in definitions("python", (project / "pkg/models.py").read_text())}
    assert set(found) == {"Invoice", "TAX_RATE"}
    summary = found["Invoice"].summary
    assert summary.startswith("class Invoice:")
    assert summary.count('"""An invoice to a customer."""') == 1
    assert "self.amount_cents = amount_cents" in summary
    assert "def mark_paid(self, when: str) -> None:" in summary
    assert "return None" not in summary


@pytest.mark.parametrize(
    ("language", "source", "name", "kept", "left_out"),
    [
        (
            "typescript",
            "export interface Shape { area(): number }\n"
            "export function scale(shape: Shape, by: number): Shape {\n  return shape\n}\n",
            "scale",
            "export function scale(shape: Shape, by: number): Shape",
            "return shape",
        ),
        (
            "go",
            "package geo\n\ntype Point struct {\n\tX int\n}\n\n"
            "func (p *Point) Shift(dx int) Point {\n\treturn Point{p.X + dx}\n}\n",
            "Shift",
            "func (p *Point) Shift(dx int) Point",
            "return Point",
        ),
        (
            "rust",
            "pub struct Meter { pub value: f64 }\n\n"
            "impl Meter {\n    pub fn double(&self) -> f64 {\n        self.value * 2.0\n    }\n}\n",
            "Meter",
            "pub fn double(&self) -> f64",
            "self.value * 2.0",
        ),
    ],
)
def test_definitions_in_other_languages(
    language: str, source: str, name: str, kept: str, left_out: str
) -> None:
    summaries = "\n".join(d.summary for d in definitions(language, source) if d.name == name)
    assert kept in summaries
    assert left_out not in summaries


@pytest.mark.parametrize(
    ("files", "importer", "expected"),
    [
        (
            {"app/models.py": "class A: pass\n", "app/views.py": "from .models import A\n"},
            "app/views.py",
            {"app/models.py"},
        ),
        (
            {
                "src/lib/util.ts": "export const x = 1\n",
                "src/app/main.ts": "import { x } from '../lib/util'\n",
            },
            "src/app/main.ts",
            {"src/lib/util.ts"},
        ),
        (
            {
                "geo/point.go": "package geo\n",
                "cmd/main.go": 'package main\nimport (\n\t"example.com/m/geo"\n)\n',
            },
            "cmd/main.go",
            {"geo/point.go"},
        ),
        (
            {"src/units.rs": "pub struct Meter;\n", "src/main.rs": "mod units;\nuse crate::units::Meter;\n"},
            "src/main.rs",
            {"src/units.rs"},
        ),
    ],
)
def test_imports_resolve_to_workspace_files(files: dict[str, str], importer: str, expected: set[str]) -> None:
    entries = {}
    for name, text in files.items():
        entry = make_entry(PurePosixPath(name), text)
        assert entry is not None
        entries[entry.path] = entry
    found = resolve_imports(entries[PurePosixPath(importer)], entries)
    assert {path.as_posix() for path in found} == expected


# ---------------------------------------------------------------------- what a cursor gets
def test_the_imported_definition_is_chosen_within_budget(project: Path) -> None:
    index = WorkspaceIndex(project, FileFilter(project))
    index.scan()
    text = (project / "pkg/billing.py").read_text()
    current = current_entry(PurePosixPath("pkg/billing.py"), "python", text)
    selection = choose(current, len(text), index.entries(), RecentChunks(), 400, count)
    assert [chunk.reason for chunk in selection.chunks][-1] == "definition of Invoice (imported)"
    assert selection.tokens <= 400
    assert all(chunk.path != PurePosixPath("pkg/billing.py") for chunk in selection.chunks)
    assert "helper_nobody_uses" not in "".join(text for _, text in selection.files())
    # Deterministic: the same inputs choose the same chunks in the same order.
    again = choose(current, len(text), index.entries(), RecentChunks(), 400, count)
    assert again == selection
    # A budget too small for anything chooses nothing rather than overflow.
    assert choose(current, len(text), index.entries(), RecentChunks(), 5, count).chunks == ()


def test_recently_edited_places_of_other_files_come_back(project: Path) -> None:
    index = WorkspaceIndex(project, FileFilter(project))
    index.scan()
    ring = RecentChunks()
    ring.note(PurePosixPath("sub/kept.py"), "KEPT = 1\nRECENT_TOTAL_INVOICE = 2\n", 1, "edited")
    text = "from .models import Invoice\n\ninvoice_total = Invoice\n"
    current = current_entry(PurePosixPath("pkg/other.py"), "python", text)
    selection = choose(current, len(text), index.entries(), ring, 1000, count)
    reasons = {chunk.path.as_posix(): chunk.reason for chunk in selection.chunks}
    assert reasons["sub/kept.py"].startswith("recently edited")


# ---------------------------------------------------------------------- the session
def test_a_pinned_context_stays_while_typing_and_changes_after_a_pause(project: Path) -> None:
    with running(project, WorkspaceSettings(budget_tokens=600)) as workspace:
        uri = (project / "pkg/billing.py").as_uri()
        text = (project / "pkg/billing.py").read_text()
        workspace.opened(uri, text)
        first = workspace.repository_for(uri, text, len(text), count)
        assert first is not None and first.current_path == "pkg/billing.py"
        assert [path for path, _ in first.files][-1] == "pkg/models.py"
        typed = text + "invoice.amount_cents"
        workspace.changed(uri, typed, 4)
        # Keystrokes keep the pinned context.
        assert workspace.repository_for(uri, typed, len(typed), count) is first
        # A pause chooses again: the same chunks keep the very same context (and KV prefix).
        assert workspace.refresh(uri, typed, count) is first
        typed += " * TAX_RATE"
        workspace.changed(uri, typed, 4)
        assert workspace.repository_for(uri, typed, len(typed), count) is first
        # A name from another file typed since: the next pause brings its definition in.
        refreshed = workspace.refresh(uri, typed, count)
        assert refreshed is not None and refreshed is not first
        assert "TAX_RATE = 0.2" in dict(refreshed.files)["pkg/models.py"]
        assert workspace.repository_for(uri, typed, len(typed), count) is refreshed
        # The cursor moves where no other file's name is used: the block it has stays.
        workspace.cursor_at(uri, 0)
        assert workspace.refresh(uri, typed, count) is refreshed


def test_an_open_buffer_of_an_excluded_file_never_reaches_a_context(project: Path) -> None:
    with running(project, WorkspaceSettings(budget_tokens=4000, exclude_globs=("private/",))) as workspace:
        leaked = "def invoice_total_secret(invoice):\n    return 'sk-live-open-buffer'\n"
        for name in [*SECRET_PATHS, "private/notes.py", "generated/api.py"]:
            uri = (project / name).as_uri()
            workspace.opened(uri, leaked)
            workspace.changed(uri, leaked + "\n", 1)
            workspace.viewed(uri, leaked, 0)
        uri = (project / "pkg/billing.py").as_uri()
        text = "from .models import Invoice\n\ntotal = invoice_total_secret(Invoice)\n"
        repository = workspace.refresh(uri, text, count)
        assert repository is not None
        shown = "".join(path + body for path, body in repository.files)
        assert "sk-live" not in shown
        assert "pkg/models.py" in shown


def test_unsaved_buffer_text_wins_over_the_disk(project: Path) -> None:
    with running(project, WorkspaceSettings(budget_tokens=600)) as workspace:
        models = (project / "pkg/models.py").as_uri()
        workspace.opened(models, "class Invoice:\n    def refund_in_full(self) -> int: ...\n")
        uri = (project / "pkg/billing.py").as_uri()
        text = (project / "pkg/billing.py").read_text()
        repository = workspace.refresh(uri, text, count)
        assert repository is not None
        shown = dict(repository.files)["pkg/models.py"]
        assert "refund_in_full" in shown and "customer_name" not in shown
        # Switched off and on again: the roots are indexed anew, and the buffer still wins.
        workspace.configure(WorkspaceSettings(budget_tokens=600, enabled=False))
        assert workspace.roots == [] and workspace.refresh(uri, text, count) is None
        workspace.configure(WorkspaceSettings(budget_tokens=600))
        assert workspace.wait_until_watching()
        repository = workspace.refresh(uri, text, count)
        assert repository is not None and "refund_in_full" in dict(repository.files)["pkg/models.py"]
        workspace.closed(models)
        repository = workspace.refresh(uri, text, count)
        assert repository is not None and "customer_name" in dict(repository.files)["pkg/models.py"]


# ---------------------------------------------------------------------- the watch
def test_the_index_follows_creation_change_rename_and_deletion_on_disk(project: Path) -> None:
    with running(project, WorkspaceSettings(exclude_globs=("private/",))) as workspace:
        index = workspace.index_for(project)
        assert index is not None

        def names_in(path: str) -> set[str]:
            entry = index.get(PurePosixPath(path))
            return {d.name for d in entry.definitions} if entry is not None else set()

        (project / "pkg/shipping.py").write_text("def ship_order(order_id: int) -> str:\n    return ''\n")
        assert wait_for(lambda: names_in("pkg/shipping.py") == {"ship_order"})

        (project / "pkg/shipping.py").write_text("def ship_parcel(parcel_id: int) -> str:\n    return ''\n")
        assert wait_for(lambda: names_in("pkg/shipping.py") == {"ship_parcel"})

        (project / "pkg/shipping.py").rename(project / "pkg/delivery.py")
        assert wait_for(lambda: names_in("pkg/delivery.py") == {"ship_parcel"})
        assert wait_for(lambda: index.get(PurePosixPath("pkg/shipping.py")) is None)

        (project / "pkg/delivery.py").unlink()
        assert wait_for(lambda: index.get(PurePosixPath("pkg/delivery.py")) is None)

        # A secret created on disk never enters, nor does a file the .gitignore covers.
        (project / "pkg/.env.local").write_text("TOKEN = 'sk-live-new-secret'\n")
        (project / "generated/new_api.py").write_text("NEW = 'sk-live-new-generated'\n")
        (project / "pkg/marker.py").write_text("MARKER = 1\n")
        assert wait_for(lambda: index.get(PurePosixPath("pkg/marker.py")) is not None)
        assert not any("sk-live" in entry.text for entry in index.entries().values())


def test_max_indexed_files_bounds_the_index(project: Path) -> None:
    with running(project, WorkspaceSettings(max_files=2)) as workspace:
        index = workspace.index_for(project)
        assert index is not None and len(index) == 2
        assert "maxIndexedFiles" in workspace.status()["roots"][0]["stoppedEarly"]


# ---------------------------------------------------------------------- the repository formats
def test_families_without_repository_tokens_get_path_comments() -> None:
    from fim.backend import RepositoryContext
    from fim.templates import DEEPSEEK, ResolvedTemplate

    template = ResolvedTemplate(DEEPSEEK, 1, 2, 3, "psm", 0, frozenset())
    repository = RepositoryContext("shop", (("src/money.ts", "export const cents = 100"),), "src/cart.py")
    ids = template.repository_ids(repository, lambda text: [ord(char) for char in text])
    assert "".join(map(chr, ids)) == "// src/money.ts\nexport const cents = 100\n\n# src/cart.py\n"
    prompt, stream_end = template.build([ord("x")], [], ids)
    # BOS, the other files, then the FIM prefix token and the document: all one stream.
    assert prompt[0] == 0 and prompt[1 : 1 + len(ids)] == ids and prompt[1 + len(ids)] == 1
    assert stream_end == len(ids) + 3
