"""``mlops-lite data ...``: versioned data, lakeFS-style: repositories, branches, objects,
commits, merges, reverts, tags, queries and upkeep, through ``platform.data`` (the
embedded store, or the daemon's data API when it runs)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.text import Text

from mlops_lite.cli.common import (
    JsonOption,
    err,
    group,
    line,
    pairs,
    platform,
    print_json,
    print_table,
    short,
    table,
)
from mlops_lite.cli.transfer import CHUNK, PROGRESS_BYTES, parse_range, put_file, put_folder, write_out
from mlops_lite.errors import InvalidInput

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.data import DataStore, RepositoryConfig

app = group("Versioned data: repositories, branches, objects, commits, merges, tags, queries.")
repo_app = group("Data repositories.")
branch_app = group("Branches of a data repository.")
tag_app = group("Tags of a data repository.")
app.add_typer(repo_app, name="repo")
app.add_typer(branch_app, name="branch")
app.add_typer(tag_app, name="tag")

RepoArg = Annotated[str, typer.Argument(help="The data repository.", show_default=False)]


def _store(p: PlatformAPI) -> DataStore:
    """The data facet, typed with the verbs both the embedded store and the daemon's client
    offer beyond the data Protocol (a repository's rules, ``query``, ``open``,
    ``import_directory``; mlops_lite/api/data.py says why they stay off it)."""
    return cast("DataStore", p.data)


# --- data repo --------------------------------------------------------------
@repo_app.command("create")
def repo_create(name: RepoArg,
                classification: Annotated[str, typer.Option(
                    help="public | internal | personal | sensitive-personal (required: personal ones check "
                         "the default PII column patterns).", show_default=False)],
                default_branch: Annotated[str, typer.Option(help="The default branch (created empty, protected).")]
                = "main",
                allow_weaker: Annotated[bool, typer.Option(
                    "--allow-weaker-classification",
                    help="Admin: make again a deleted repository's name under a weaker classification.")]
                = False) -> None:
    """Create a data repository with its classification and an empty, protected default branch."""
    with platform() as p:
        record = p.data.repo(name).create(classification=classification, default_branch=default_branch,
                                          allow_weaker=allow_weaker)
    line(f"created repository {record.name} (default branch {record.default_branch}, "
         f"protected: {', '.join(record.protected_branches) or 'none'})")


@repo_app.command("list")
def repo_list(as_json: JsonOption = False) -> None:
    """List the data repositories."""
    with platform() as p:
        records = p.data.repositories()
    if as_json:
        print_json(records)
        return
    if not records:
        line("no data repositories (create one: mlops-lite data repo create NAME --classification internal)")
        return
    out = table("repository", "default", "branches", "protected", "created")
    for r in records:
        out.add_row(Text(r.name), Text(r.default_branch), str(len(r.branches)),
                      Text(", ".join(r.protected_branches) or "-"), r.created_at.strftime("%Y-%m-%d %H:%M"))
    print_table(out)


@repo_app.command("rotate-key")
def repo_rotate_key(name: RepoArg) -> None:
    """Move the repository to its next pseudonymization key (admin; audited as keys.rotate).
    New files get new tokens; old tokens keep their pii1: prefix and stay accepted."""
    with platform() as p:
        key_id = p.privacy.rotate_key(name)
    line(f"repository {name} pseudonymizes under key {key_id} now")


@repo_app.command("delete")
def repo_delete(name: RepoArg,
                yes: Annotated[bool, typer.Option("--yes", help="Confirm: drop every branch, tag and commit.")]
                = False) -> None:
    """Delete a repository's branches, tags and commits (its objects go at the next `data gc --apply`)."""
    if not yes:
        raise InvalidInput(f"deleting {name!r} drops every branch, tag and commit of it: pass --yes to confirm",
                           field="yes", expected="--yes")
    with platform() as p:
        p.data.repo(name).delete()
    line(f"deleted repository {name} (run `mlops-lite data gc --apply` to free its objects)")


def _load_schema(spec: str) -> Any:
    from mlops_lite.data import ColumnRule, SchemaRule

    glob, sep, file = spec.rpartition("=")
    if not sep or not glob or not file:
        raise InvalidInput(f"bad --schema {spec!r}", field="schema", expected="GLOB=FILE.json")
    try:
        columns = json.loads(Path(file).expanduser().read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read the schema file {file}: {exc.strerror}", field="schema",
                           expected="a readable JSON file") from exc
    except ValueError as exc:
        raise InvalidInput(f"the schema file {file} is not JSON: {exc}", field="schema",
                           expected='[{"name": ..., "type": ..., "nullable": ...}, ...]') from exc
    try:
        if not isinstance(columns, list) or not columns:
            raise TypeError("expected a non-empty list of columns")
        return SchemaRule(paths=glob, columns=tuple(ColumnRule(**c) for c in columns))
    except TypeError as exc:
        raise InvalidInput(f"bad schema in {file}: {exc}", field="schema",
                           expected='[{"name": str, "type": "int|float|string|bool|timestamp|date", '
                                    '"nullable": bool}, ...]') from exc


def _print_config(name: str, config: RepositoryConfig) -> None:
    line(f"repository        {name}")
    line(f"protected         {', '.join(config.protected_branches) or '-'}")
    line(f"pii patterns      {', '.join(config.pii_patterns) or '-'}")
    line(f"max object bytes  {config.max_object_bytes if config.max_object_bytes is not None else '-'}")
    if not config.schemas:
        line("schemas           -")
    for index, schema in enumerate(config.schemas):
        columns = ", ".join(f"{c.name}:{c.type}{'' if c.nullable else '!'}" for c in schema.columns)
        line(f"{'schemas' if index == 0 else '':<18}{schema.paths} -> {columns}")


@repo_app.command("config")
def repo_config(
        name: RepoArg,
        protect: Annotated[list[str] | None, typer.Option(
            "--protect", metavar="BRANCH", help="A protected branch (repeat; replaces the list).")] = None,
        pii_pattern: Annotated[list[str] | None, typer.Option(
            "--pii-pattern", metavar="REGEX", help="A PII column-name pattern (repeat; replaces the list).")]
        = None,
        max_object_bytes: Annotated[int | None, typer.Option(help="The largest object a commit may add.")] = None,
        schema: Annotated[list[str] | None, typer.Option(
            "--schema", metavar="GLOB=FILE.json",
            help='A pinned schema for tables matching GLOB; the file holds [{"name", "type", "nullable"}, ...] '
                 "(repeat; replaces the list).")] = None,
        as_json: JsonOption = False) -> None:
    """Show a repository's rules, or change them (what is not given stays as it is)."""
    schemas = [_load_schema(s) for s in schema] if schema else None
    with platform() as p:
        repo = _store(p).repo(name)
        if protect is None and pii_pattern is None and max_object_bytes is None and schemas is None:
            config = repo.config()
        else:
            config = repo.configure(protected_branches=protect, pii_patterns=pii_pattern,
                                    max_object_bytes=max_object_bytes, schemas=schemas)
    if as_json:
        print_json(config.to_json())
    else:
        _print_config(name, config)


@repo_app.command("privacy")
def repo_privacy(
        name: RepoArg,
        profile_file: Annotated[Path | None, typer.Option(
            "--file", metavar="PROFILE.toml", help="The whole profile from a TOML (or JSON) file; the options "
                                                   "below change it further.")] = None,
        classification: Annotated[str | None, typer.Option(
            help="public | internal | personal | sensitive-personal")] = None,
        region: Annotated[str | None, typer.Option(help="Where its bytes are stored (e.g. ae).")] = None,
        purpose: Annotated[str | None, typer.Option(help="Why the data is processed.")] = None,
        lawful_basis: Annotated[str | None, typer.Option(
            help="consent | contract | legal-obligation | vital-interests | public-task | legitimate-interests")]
        = None,
        category: Annotated[list[str] | None, typer.Option(
            "--category", help="A category of personal data (repeat; replaces the list).")] = None,
        data_subjects: Annotated[str | None, typer.Option(help="Who the data is about.")] = None,
        retention_days: Annotated[int | None, typer.Option(help="Rows (or objects) older than this go.")] = None,
        time_column: Annotated[str | None, typer.Option(help="The column retention counts age by.")] = None,
        subject_column: Annotated[list[str] | None, typer.Option(
            "--subject-column", help="A column identifying a data subject (repeat; replaces the list).")] = None,
        quasi_identifier: Annotated[list[str] | None, typer.Option(
            "--quasi-identifier", help="A quasi-identifier for k-anonymity (repeat; replaces the list).")] = None,
        k_anonymity: Annotated[int | None, typer.Option(help="The smallest equivalence class a merge allows.")]
        = None,
        as_json: JsonOption = False) -> None:
    """Show a repository's privacy profile (classification, residency, purpose, lawful basis,
    retention, data subjects, transforms, k-anonymity), or change it (admin over HTTP; audited)."""
    import tomllib

    from mlops_lite.privacy.profile import PrivacyProfile

    changes = {key: value for key, value in {
        "classification": classification, "region": region, "purpose": purpose, "lawful_basis": lawful_basis,
        "categories": None if category is None else tuple(category), "data_subjects": data_subjects,
        "retention_days": retention_days, "time_column": time_column,
        "subject_columns": None if subject_column is None else tuple(subject_column),
        "quasi_identifiers": None if quasi_identifier is None else tuple(quasi_identifier),
        "k_anonymity": k_anonymity}.items() if value is not None}
    with platform() as p:
        repo = _store(p).repo(name)
        current = repo.config().privacy
        if profile_file is None and not changes:
            profile = current
        else:
            if profile_file is not None:
                try:
                    text = profile_file.read_text()
                    loaded = json.loads(text) if profile_file.suffix == ".json" else tomllib.loads(text)
                except (OSError, ValueError) as exc:
                    raise InvalidInput(f"cannot read the profile {profile_file}: {exc}", field="file",
                                       expected="a TOML or JSON file of the profile's fields") from exc
                base = PrivacyProfile.from_json({**({"classification": classification} if classification else {}),
                                                 **loaded})
            elif current is not None:
                base = current
            elif classification is not None:
                base = PrivacyProfile(classification=classification)
            else:
                raise InvalidInput(f"{name} has no privacy profile yet: give its --classification",
                                   field="classification", expected="public | internal | personal | sensitive-personal")
            assert base is not None
            profile = repo.configure(privacy=base.with_changes(**changes)).privacy
    if as_json:
        print_json(None if profile is None else profile.to_json())
        return
    if profile is None:
        line(f"{name}: no privacy profile (made before classification was required: treated as personal)")
        return
    for key, value in profile.to_json().items():
        if value not in (None, [], (), {}):
            line(f"{key:<18}{', '.join(map(str, value)) if isinstance(value, list | tuple) else value}")


# --- data branch ------------------------------------------------------------
@branch_app.command("create")
def branch_create(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The new branch.")],
                  source: Annotated[str | None, typer.Option(
                      "--from", metavar="REF", help="Where it starts (default: the default branch).")] = None) -> None:
    """Create a branch at a ref (O(1): no data is copied)."""
    with platform() as p:
        record = p.data.repo(repo).branch(branch).create(source)
    line(f"created branch {record.name} at {short(record.head)}")


@branch_app.command("list")
def branch_list(repo: RepoArg, as_json: JsonOption = False) -> None:
    """List a repository's branches and their heads."""
    with platform() as p:
        handle = p.data.repo(repo)
        records = handle.branches()
        info = handle.info()
    if as_json:
        print_json(records)
        return
    out = table("branch", "head", "")
    for r in records:
        marks = [m for m, on in (("default", r.name == info.default_branch),
                                 ("protected", r.name in info.protected_branches)) if on]
        out.add_row(Text(r.name), short(r.head), ", ".join(marks))
    print_table(out)


@branch_app.command("delete")
def branch_delete(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to delete.")]) -> None:
    """Delete a branch and its uncommitted changes (its commits stay reachable from others)."""
    with platform() as p:
        p.data.repo(repo).branch(branch).delete()
    line(f"deleted branch {branch}")


@branch_app.command("reset")
def branch_reset(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to reset.")]) -> None:
    """Drop every uncommitted change on a branch."""
    with platform() as p:
        count = p.data.repo(repo).branch(branch).reset()
    line(f"dropped {count} uncommitted change(s) on {branch}")


@app.command("put")
def data_put(
        repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to stage on.")],
        local_path: Annotated[Path, typer.Argument(
            help="A file, a folder, or - for stdin.", show_default=False)],
        dest_path: Annotated[str | None, typer.Argument(
            help="Object path (a folder's prefix; ending in / puts a file under it). "
                                        "Default: the local name.", show_default=False)] = None,
        commit: Annotated[str | None, typer.Option("--commit", metavar="MESSAGE",
                                                   help="Commit right after staging.")] = None,
        meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                       help="Commit metadata (with --commit; repeat).")] = None) \
        -> None:
    """Stage a file (streamed) or a folder's files on a branch; --commit commits them."""
    metadata = pairs(meta, "meta", "KEY=VALUE")
    stdin = local_path == Path("-")
    if stdin and not dest_path:
        raise InvalidInput("reading stdin needs a DEST_PATH", field="dest_path", expected="an object path")
    if not stdin and not local_path.exists():
        raise InvalidInput(f"no such file or folder: {local_path}", field="path", expected="an existing file or folder")
    name = "" if stdin else local_path.resolve().name
    with platform() as p:
        handle = _store(p).repo(repo).branch(branch)
        if not stdin and local_path.is_dir():
            prefix = name if dest_path is None else dest_path
            count = put_folder(handle, local_path, prefix)
            line(f"staged {count} object(s) under {prefix.rstrip('/') + '/' if prefix else '/'} on {repo}/{branch}")
        else:
            dest = name if dest_path is None else dest_path + name if dest_path.endswith("/") else dest_path
            record = put_file(handle, local_path, dest)
            line(f"staged {record.path} ({record.size} bytes, sha256:{record.digest[:12]}) on {repo}/{branch}")
        if commit is not None:
            made = handle.commit(commit, metadata=metadata)
            line(f"committed {short(made.id)} on {repo}/{branch}: {made.message}")


@app.command("get")
def data_get(repo: RepoArg, ref: Annotated[str, typer.Argument(help="A branch, tag or commit.")],
             path: Annotated[str, typer.Argument(help="The object path.")],
             output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE",
                                                         help="Write here (default: stdout).")] = None,
             byte_range: Annotated[str | None, typer.Option("--range", metavar="START-END",
                                                            help="Only these bytes (END inclusive).")] = None,
             region: Annotated[str | None, typer.Option(
                 "--region", help="The region the bytes are exported to: refused (and audited) when the "
                                  "repository's classification may not be placed there.")] = None) -> None:
    """Read an object's bytes (to stdout by default, binary-safe)."""
    span = parse_range(byte_range) if byte_range else None
    with platform() as p:
        if region is not None:
            p.compliance.check_transfer(repo, region)
        reference = _store(p).repo(repo).ref(ref)
        if span is not None:
            write_out(output, [reference.read_bytes(path, start=span[0], end=span[1])], None)
            return
        size = reference.stat(path).size  # the content's size (its file may be encrypted)
        with reference.open(path) as stream:
            write_out(output, iter(lambda: stream.read(CHUNK), b""), size if size > PROGRESS_BYTES else None)


@app.command("ls")
def data_ls(repo: RepoArg, ref: Annotated[str, typer.Argument(help="A branch, tag or commit.")],
            prefix: Annotated[str, typer.Argument(help="Only paths starting with this.")] = "",
            recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Every object, not folder by folder.")]
            = False,
            as_json: JsonOption = False) -> None:
    """List objects (and folders, unless --recursive); * marks uncommitted ones."""
    objects: list[Any] = []
    prefixes: list[str] = []
    with platform() as p:
        reference = p.data.repo(repo).ref(ref)
        after = ""
        while True:
            page = reference.ls(prefix, delimiter="" if recursive else "/", after=after, amount=1000)
            objects += page.objects
            prefixes += page.prefixes
            if page.has_more:
                after = page.next_after
                continue
            if not recursive and prefix and not prefix.endswith("/") and not objects and prefixes == [prefix + "/"]:
                # `ls REPO REF folder` lists the folder, as ls does, rather than the folder itself.
                prefix, prefixes, after = prefix + "/", [], ""
                continue
            break
    if as_json:
        print_json({"prefixes": prefixes, "objects": objects})
        return
    rows = sorted([(p, None) for p in prefixes] + [(o.path, o) for o in objects], key=lambda row: row[0])
    for path, record in rows:
        if record is None:
            line(f"{'DIR':>12}  {'':12}    {path}")
        else:
            line(f"{record.size:>12}  {record.digest[:12]}  {'*' if record.staged else ' '} {path}")


# --- data history -----------------------------------------------------------
@app.command("commit")
def data_commit(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to commit on.")],
                message: Annotated[str, typer.Option("-m", "--message", help="The commit message.")],
                meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                               help="Commit metadata (repeat).")] = None) -> None:
    """Commit a branch's staged changes (after the repository's checks pass)."""
    metadata = pairs(meta, "meta", "KEY=VALUE")
    with platform() as p:
        record = p.data.repo(repo).branch(branch).commit(message, metadata=metadata)
    line(f"committed {short(record.id)} on {repo}/{branch}: {record.message}")


@app.command("log")
def data_log(repo: RepoArg,
             ref: Annotated[str | None, typer.Argument(help="Where to start (default: the default branch).")] = None,
             amount: Annotated[int, typer.Option(help="How many commits, newest first.")] = 50,
             as_json: JsonOption = False) -> None:
    """Commits from a ref back along first parents, newest first."""
    with platform() as p:
        records = p.data.repo(repo).log(ref, amount=amount)
    if as_json:
        print_json(records)
        return
    if not records:
        line("no commits")
        return
    out = table("commit", "when", "author", "message")
    for r in records:
        merge = " (merge)" if len(r.parents) > 1 else ""
        out.add_row(short(r.id), r.created_at.strftime("%Y-%m-%d %H:%M:%S"), Text(r.author),
                      Text(r.message + merge))
    print_table(out)


@app.command("diff")
def data_diff(repo: RepoArg, left: Annotated[str, typer.Argument(help="A ref (a branch when RIGHT is omitted).")],
              right: Annotated[str | None, typer.Argument(
                  help="A ref; omitted: LEFT's uncommitted changes.")] = None,
              prefix: Annotated[str, typer.Option(help="Only paths starting with this.")] = "",
              as_json: JsonOption = False) -> None:
    """What changes from LEFT to RIGHT, or a branch's uncommitted changes."""
    with platform() as p:
        handle = p.data.repo(repo)
        if right is None:
            branch = handle.branch(left)
            branch.head()  # NotFound unless LEFT is a branch
            entries = [e for e in branch.uncommitted() if e.path.startswith(prefix)]
        else:
            entries = handle.diff(left, right, prefix=prefix)
    if as_json:
        print_json(entries)
        return
    if not entries:
        line("no changes")
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for e in entries:
        line(f"{marks.get(e.type, '?')} {e.type:<8} {e.path}  ({e.size} bytes)")


@app.command("merge")
def data_merge(repo: RepoArg, source: Annotated[str, typer.Argument(help="The branch to merge.")],
               dest: Annotated[str, typer.Argument(help="The branch to merge into.")],
               strategy: Annotated[str, typer.Option(
                   help="On conflicts: fail | source-wins | dest-wins.")] = "fail",
               rule: Annotated[list[str] | None, typer.Option(
                   "--rule", metavar="GLOB=STRATEGY", help="A strategy for conflicting paths matching GLOB "
                                                         "(repeat; first match wins).")] = None,
               message: Annotated[str | None, typer.Option("-m", "--message", help="The merge commit's message.")]
               = None,
               meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                              help="Merge commit metadata (repeat).")] = None) -> None:
    """Three-way merge of SOURCE into DEST (through DEST's pre-merge checks)."""
    rules = pairs(rule, "rule", "GLOB=STRATEGY")
    metadata = pairs(meta, "meta", "KEY=VALUE")
    with platform() as p:
        record = p.data.repo(repo).branch(source).merge_into(dest, strategy=strategy, rules=rules,
                                                             message=message, metadata=metadata)
    line(f"{dest} is at {short(record.id)}: {record.message}")


@app.command("revert")
def data_revert(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to commit the revert on.")],
                commit: Annotated[str, typer.Argument(help="The commit to undo (id, prefix, tag).")],
                message: Annotated[str | None, typer.Option("-m", "--message", help="The revert's message.")]
                = None,
                parent: Annotated[int, typer.Option("--parent", min=0, help=(
                    "For a merge commit: the parent (1-based) to revert to, as lakeFS's parent_number."))]
                = 0) -> None:
    """A new commit on BRANCH undoing COMMIT's changes (allowed on a protected branch, as in lakeFS)."""
    with platform() as p:
        record = p.data.repo(repo).branch(branch).revert(commit, parent_number=parent, message=message)
    line(f"committed {short(record.id)} on {repo}/{branch}: {record.message}")


# --- data tag -----------------------------------------------------------------
@tag_app.command("create")
def tag_create(repo: RepoArg, tag: Annotated[str, typer.Argument(help="The tag.")],
               ref: Annotated[str, typer.Argument(help="The branch, tag or commit it names.")]) -> None:
    """Tag the commit a ref points at."""
    with platform() as p:
        record = p.data.repo(repo).create_tag(tag, ref)
    line(f"tagged {short(record.commit)} as {record.name}")


@tag_app.command("list")
def tag_list(repo: RepoArg, as_json: JsonOption = False) -> None:
    """List a repository's tags."""
    with platform() as p:
        records = p.data.repo(repo).tags()
    if as_json:
        print_json(records)
        return
    if not records:
        line("no tags")
    for r in records:
        line(f"{r.name}  {short(r.commit)}")


@tag_app.command("delete")
def tag_delete(repo: RepoArg, tag: Annotated[str, typer.Argument(help="The tag.")]) -> None:
    """Delete a tag (its commit stays)."""
    with platform() as p:
        p.data.repo(repo).delete_tag(tag)
    line(f"deleted tag {tag}")


# --- data query and upkeep ----------------------------------------------------
def _table_spec(spec: str) -> tuple[str, tuple[str, str]]:
    name, sep, rest = spec.partition("=")
    ref, colon, path = rest.partition(":")
    if not sep or not name or not colon or not ref or not path:
        raise InvalidInput(f"bad --table {spec!r}", field="table", expected="NAME=REF:PATH_OR_GLOB")
    return name, (ref, path)


@app.command("query")
def data_query(repo: RepoArg, sql: Annotated[str, typer.Argument(help="DuckDB SQL over the named tables.")],
               table_specs: Annotated[list[str], typer.Option(
                   "--table", metavar="NAME=REF:PATH_OR_GLOB",
                   help="A table: CSV/Parquet objects at a ref (repeat).")],
               limit: Annotated[int, typer.Option(min=1, help="Rows shown (the table, not --csv).")] = 50,
               as_csv: Annotated[bool, typer.Option("--csv", help="Print every row as CSV.")] = False) -> None:
    """SQL over tables at refs; prints the result and the commit each table was read at."""
    import pyarrow.csv as pacsv

    tables = dict(_table_spec(s) for s in table_specs)
    with platform() as p:
        with err.status("querying", spinner="dots"):
            result = _store(p).repo(repo).query(sql, **tables)
    read_at = [f"{name} read at {tables[name][0]}@{short(commit)} ({tables[name][1]})"
               for name, commit in result.commits.items()]
    if as_csv:
        pacsv.write_csv(result.table, sys.stdout.buffer)
        sys.stdout.flush()
        for text in read_at:
            err.print(Text(text), highlight=False)
        return
    shown = result.table.slice(0, limit)
    out = table(*shown.column_names)
    for row in shown.to_pylist():
        out.add_row(*(Text("null", style="dim") if v is None else Text(str(v)) for v in row.values()))
    print_table(out)
    total = result.table.num_rows
    line(f"{total} row(s)" + (f", showing {limit} (--limit, or --csv for all)" if total > limit else ""))
    for text in read_at:
        line(text)


@app.command("gc")
def data_gc(apply: Annotated[bool, typer.Option("--apply", help="Remove (default: a dry run).")] = False,
            retention_days: Annotated[float, typer.Option(
                help="Objects of commits younger than this stay, reachable or not.")] = 7.0,
            grace_seconds: Annotated[float, typer.Option(
                help="Objects younger than this stay (uploads in flight).")] = 3600.0,
            as_json: JsonOption = False) -> None:
    """Remove data objects nothing reaches (a dry run unless --apply)."""
    with platform() as p:
        with err.status("collecting garbage" if apply else "looking for garbage", spinner="dots"):
            report = _store(p).gc(retention_days=retention_days, dry_run=not apply, grace_seconds=grace_seconds)
    if as_json:
        print_json(report)
        return
    line(f"{'dry run: ' if report.dry_run else ''}{report.objects_total} objects, {report.unreachable} unreachable "
         f"({report.bytes_unreachable} bytes), {report.removed} removed, {report.kept_young} kept as young")
    if report.dry_run and report.unreachable:
        line("run again with --apply to remove them")


@app.command("fsck")
def data_fsck(as_json: JsonOption = False) -> None:
    """Verify every data object's digest and that every commit's tree is whole; exit 1 when not clean."""
    with platform() as p:
        with err.status("checking objects and commits", spinner="dots"):
            report = _store(p).fsck()
    if as_json:
        print_json({**dataclasses.asdict(report), "clean": report.clean})
    else:
        line(f"{report.objects_checked} objects and {report.commits_checked} commits checked: "
             f"{'clean' if report.clean else 'NOT clean'}")
        for digest in report.bad_objects:
            line(f"bad object {digest} (its bytes do not match its digest)")
        for missing in report.missing:
            line(f"missing {missing}")
    if not report.clean:
        raise typer.Exit(1)

