"""A loopback server that speaks the Hugging Face Hub's HTTP protocol, for tests.

This is a fixture of the *server protocol*, not a mock of the client: the tests run the real
huggingface_hub client (URL building, preupload, NDJSON commits, tags, the download cache, the
mapping of X-Error-Code headers to exceptions) against it. Repos live in memory. It implements the
endpoints huggingface_hub 2.4 uses for create_repo, upload_folder, create_tag, list_repo_refs,
repo_info, list_repo_tree, list_repo_commits and hf_hub_download; every file is stored "regular"
(base64 in the commit), so no LFS or Xet transfer is involved.

Write endpoints need `Authorization: Bearer <token>` with a token in `TOKENS`; a private repo is
invisible without one, as on the Hub.

Faults, switched on per test (`state.add_fault(Fault(...))`, or the `hub_faults` fixture): the server
can cut a connection in the middle of a file it sends or of a request body it reads, stall there, or do
the work of a request and then lose its answer; files are served with `Range` support, as the Hub's
are, so a client can resume a cut download.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TOKENS = {"hf_gdas_loopback_write_token"}
USER = "gdas-tester"
_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and re.fullmatch(r"[0-9a-f]{40}", revision):
            oid = revision
        return self.commits.get(oid) if oid else None


@dataclass
class Fault:
    """A request the server spoils on purpose.

    kind: "cut" closes the connection after `after` bytes of the file being sent (GET) or of the request
    body being read (POST); "stall" sends or reads `after` bytes, then says nothing for `seconds` (or
    until the test ends) and closes; "lose_answer" does what the request asks, then closes the connection
    without answering. `after` None: the whole body. `method` and `path` (a regular expression searched
    in the URL path) choose the requests; `times` is how many of them are spoilt (None: every one).
    """

    kind: str
    method: str
    path: str
    after: int | None = 0
    seconds: float = 60.0
    times: int | None = 1
    spoilt: int = 0


class HubState:
    """All repos, behind one lock; `requests` records (method, path) for assertions, `faults` what to spoil."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.released = threading.Event()  # ends every stall (set when a test's faults are cleared)
        self._counter = 0

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.released.clear()
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.released.set()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request that still has spoils left (counting this one)."""
        with self.lock:
            for fault in self.faults:
                left = fault.times is None or fault.spoilt < fault.times
                if left and fault.method == method and re.search(fault.path, urlsplit(path).path):
                    fault.spoilt += 1
                    return fault
        return None

    def new_commit(self, repo: Repo, branch: str, files: dict[str, bytes], title: str) -> Commit:
        self._counter += 1
        oid = hashlib.sha1(f"{repo.repo_id}/{self._counter}/{time.time_ns()}".encode()).hexdigest()
        commit = Commit(oid, repo.branches.get(branch), files, title, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def create_repo(self, repo_id: str, private: bool) -> bool:
        if repo_id in self.repos:
            return False
        repo = Repo(repo_id, private)
        self.repos[repo_id] = repo
        self.new_commit(repo, "main", {".gitattributes": _GITATTRIBUTES}, "initial commit")
        return True

    def put_files(self, repo_id: str, files: dict[str, bytes], title: str = "fixture commit", tag: str | None = None) -> str:
        """Test helper: commit `files` on top of main directly (e.g. a corrupted file), optionally tagged."""
        with self.lock:
            if repo_id not in self.repos:
                self.create_repo(repo_id, private=False)
            repo = self.repos[repo_id]
            merged = {**repo.commits[repo.branches["main"]].files, **files}
            commit = self.new_commit(repo, "main", merged, title)
            if tag:
                repo.tags[tag] = commit.oid
            return commit.oid


class HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, extra: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = headers or {}, extra or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "LoopbackHub"
    _fault: Fault | None = None  # the fault spoiling the request being handled

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence per-request logging
        pass

    # --- plumbing ---

    def _segments(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        # each segment is decoded on its own: a tag or branch with "/" arrives as one %2F-quoted segment
        return [unquote(s) for s in parts.path.split("/") if s != ""], parse_qs(parts.query)

    def _body(self) -> bytes:
        # always drain the body, or the next request on this keep-alive connection is garbage
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _token_ok(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :] in TOKENS

    def _drop(self) -> None:
        """Close the connection now, as a network that fails does: no answer, no more bytes."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _spoil_request(self, fault: Fault) -> None:
        """Read `fault.after` bytes of the request body (None: all), then stall and/or drop the connection."""
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length if fault.after is None else min(fault.after, length))
        if fault.kind == "stall":
            self.server.state.released.wait(fault.seconds)
        self._drop()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        if self._fault is not None and self._fault.kind == "lose_answer":
            return self._drop()  # the work is done; the answer never arrives
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _dispatch(self, method: str) -> None:
        segments, query = self._segments()
        self._fault = self.server.state.take_fault(method, self.path)
        if self._fault is not None and method == "POST" and self._fault.kind in ("cut", "stall"):
            return self._spoil_request(self._fault)  # the request never arrives whole: nothing is done
        body = self._body()
        with self.server.state.lock:
            self.server.state.requests.append((method, self.path))
        try:
            self._route(method, segments, query, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            payload = json.dumps({"error": err.message, **err.extra}).encode()
            self._send(err.status, payload, headers, head=(method == "HEAD"))

    do_GET = lambda self: self._dispatch("GET")  # noqa: E731
    do_HEAD = lambda self: self._dispatch("HEAD")  # noqa: E731
    do_POST = lambda self: self._dispatch("POST")  # noqa: E731
    do_DELETE = lambda self: self._dispatch("DELETE")  # noqa: E731

    # --- routing ---

    def _route(self, method: str, seg: list[str], query: dict, body: bytes) -> None:
        if seg[:2] == ["api", "repos"] and seg[2:] == ["create"] and method == "POST":
            return self._create(json.loads(body or b"{}"))
        if seg == ["api", "whoami-v2"]:
            if not self._token_ok():
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": USER, "orgs": [], "auth": {"accessToken": {"role": "write"}}})
        if seg == ["api", "validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if len(seg) >= 4 and seg[:2] == ["api", "models"]:
            repo = self._repo(f"{seg[2]}/{seg[3]}", write=method in ("POST", "DELETE"))
            return self._api(method, repo, seg[4:], query, body)
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._repo(f"{seg[0]}/{seg[1]}", write=False)
            return self._resolve(repo, seg[3], "/".join(seg[4:]), head=(method == "HEAD"))
        raise HubError(404, f"no route for {method} {self.path}")

    def _repo(self, repo_id: str, write: bool) -> Repo:
        if write and not self._token_ok():
            raise HubError(401, "Invalid credentials in Authorization header")
        repo = self.server.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._token_ok()):
            raise HubError(404 if repo is None else 401, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _create(self, payload: dict) -> None:
        if not self._token_ok():
            raise HubError(401, "Invalid credentials in Authorization header")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        url = f"{self.server.url}/{repo_id}"
        with self.server.state.lock:
            created = self.server.state.create_repo(repo_id, private)
        if not created:
            raise HubError(409, "You already created this model repo", extra={"url": url})
        self._json({"url": url, "name": repo_id})

    def _api(self, method: str, repo: Repo, rest: list[str], query: dict, body: bytes) -> None:
        state = self.server.state
        if not rest and method == "GET":
            return self._json(self._info(repo, self._commit(repo, "main")))
        action, args = rest[0], rest[1:]
        if action == "revision" and method == "GET":
            return self._json(self._info(repo, self._commit(repo, args[0])))
        if action == "refs" and method == "GET":
            return self._json(self._refs(repo))
        if action == "tree" and method == "GET":
            return self._json(self._tree(self._commit(repo, args[0]), "/".join(args[1:]), query))
        if action == "commits" and method == "GET":
            return self._json(self._commits(repo, self._commit(repo, args[0])))
        if action == "preupload" and method == "POST":
            files = json.loads(body)["files"]
            head = repo.branches.get(args[0])
            return self._json({
                "files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files],
                "commitOid": head,
            })
        if action == "commit" and method == "POST":
            with state.lock:
                return self._apply_commit(repo, args[0], body)
        if action == "tag" and method == "POST":
            payload = json.loads(body)
            with state.lock:
                commit = self._commit(repo, args[0])
                if payload["tag"] in repo.tags:
                    raise HubError(409, f"Tag {payload['tag']} already exists")
                repo.tags[payload["tag"]] = commit.oid
            return self._json({"name": payload["tag"]})
        if action == "tag" and method == "DELETE":
            with state.lock:
                if repo.tags.pop(args[0], None) is None:
                    raise HubError(404, f"Tag {args[0]} not found", "RevisionNotFound")
            return self._json({})
        raise HubError(404, f"no route for {method} {self.path}")

    # --- API payloads ---

    def _info(self, repo: Repo, commit: Commit) -> dict:
        return {
            "_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
            "sha": commit.oid, "private": repo.private, "disabled": False, "gated": False, "downloads": 0,
            "likes": 0, "tags": [], "lastModified": commit.date, "createdAt": commit.date,
            "siblings": [{"rfilename": name} for name in sorted(commit.files)],
        }

    def _refs(self, repo: Repo) -> dict:
        def ref(kind: str, name: str, oid: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

        return {
            "branches": [ref("heads", n, o) for n, o in sorted(repo.branches.items())],
            "tags": [ref("tags", n, o) for n, o in sorted(repo.tags.items())],
            "converts": [],
        }

    def _tree(self, commit: Commit, prefix: str, query: dict) -> list[dict]:
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        base = f"{prefix}/" if prefix else ""
        entries: dict[str, dict] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            if "/" in rest and not recursive:
                folder = base + rest.split("/")[0]
                entries[folder] = {"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0, "path": folder}
                continue
            entries[path] = {"type": "file", "oid": git_blob_sha1(content), "size": len(content), "path": path}
        return list(entries.values())

    def _commits(self, repo: Repo, commit: Commit | None) -> list[dict]:
        history = []
        while commit is not None:
            history.append({
                "id": commit.oid, "title": commit.title, "message": "", "date": commit.date,
                "authors": [{"user": USER, "avatar": None}],
            })
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return history

    def _apply_commit(self, repo: Repo, branch: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        head = repo.resolve(branch)
        if head is None:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            elif key == "lfsFile":
                raise HubError(400, "this loopback hub stores regular files only")
        commit = self.server.state.new_commit(repo, branch, files, header.get("summary", ""))
        self._json({
            "commitUrl": f"{self.server.url}/{repo.repo_id}/commit/{commit.oid}",
            "commitOid": commit.oid, "pullRequestUrl": None,
        })

    def _resolve(self, repo: Repo, revision: str, path: str, head: bool) -> None:
        commit = self._commit(repo, revision)
        content = commit.files.get(path)
        if content is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {
            "Content-Type": "application/octet-stream", "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_sha1(content)}"', "Accept-Ranges": "bytes",
        }
        start = self._range_start(len(content)) if not head else 0
        status, body = (206, content[start:]) if start else (200, content)
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        headers["Content-Length"] = str(len(content) if head else len(body))
        if self._fault is not None and self._fault.kind in ("cut", "stall") and not head:
            return self._send_part(status, body, headers, self._fault)
        self._send(status, body, headers, head=head)

    def _range_start(self, size: int) -> int:
        """The first byte a `Range: bytes=N-` header asks for (0 without one, or past the end)."""
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "").strip())
        start = int(match.group(1)) if match else 0
        return start if start < size else 0

    def _send_part(self, status: int, body: bytes, headers: dict[str, str], fault: Fault) -> None:
        """Promise the whole body, send `fault.after` bytes of it, then stall and/or drop the connection."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: len(body) if fault.after is None else fault.after])
        self.wfile.flush()
        if fault.kind == "stall":
            self.server.state.released.wait(fault.seconds)
        self._drop()


class LoopbackHub(ThreadingHTTPServer):
    """`with LoopbackHub(port) as hub:` serves on 127.0.0.1:port in a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = HubState()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, name="loopback-hub", daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.clear_faults()  # ends any stall, so the handler threads can finish
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        """A connection the client (or a fault) closed is part of the test, not an error to print."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


if __name__ == "__main__":  # a manual round trip: python tests/hub_server.py 18080, then HF_ENDPOINT=...
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with LoopbackHub(port) as hub:
        print(f"loopback Hub on {hub.url}; HF_ENDPOINT={hub.url} HF_TOKEN={next(iter(TOKENS))}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
