"""A minimal stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, so tests push and load with the real client.

Point ``HF_ENDPOINT`` at ``StandInHub.url`` (and ``HF_HUB_DISABLE_XET=1``: the stand-in speaks the LFS protocol, not
Xet's). It answers exactly what huggingface_hub's `create_repo`, `create_branch`, `upload_folder` (README YAML check,
preupload, LFS batch and PUT, commit) and downloads (`HEAD`/`GET .../resolve/...`, repo info) ask, read from
huggingface_hub 2.4's `hf_api.py`, `_commit_api.py`, `lfs.py` and `file_download.py`; anything else is a 404 that is
recorded in `unknown`. Writes need an ``Authorization: Bearer`` token; a private repo is invisible without one.
Everything lives in memory. It is bounded: after `max_requests` it answers 503, and it shuts itself down after
`lifetime_s` even if a test never stops it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

NAMESPACE = "standin-user"  # the namespace of a repo created without one


class StandInHub:
    def __init__(self, max_requests: int = 2000, lifetime_s: float = 900.0):
        # repo_id -> {"private": bool, "branches": {name: {path: bytes}}, "commits": [{"oid", "revision", "files"}]}
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()  # bearer tokens the client sent
        self.unknown: list[str] = []
        self.max_requests = max_requests
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> StandInHub:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return self.repos[repo_id]["branches"][branch]


def _handler(hub: StandInHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the requests are recorded in hub.requests
            pass

        # -- plumbing --------------------------------------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(
            self, status: int, body: bytes | dict | None = None, headers: dict | None = None, head: bool = False
        ) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if isinstance(body, dict):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                hub.tokens.add(auth[len("Bearer ") :])
                return auth[len("Bearer ") :]
            return None

        def _repo(self, repo_id: str, head: bool = False) -> dict | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo["private"] and not self._token()):
                self._error(404, "RepoNotFound", f"Repository not found: {repo_id}", head=head)
                return None
            return repo

        def _route(self, method: str) -> None:
            path = unquote(urlparse(self.path).path)
            with hub.lock:
                hub.requests.append((method, path))
                over = len(hub.requests) > hub.max_requests
            if over:
                return self._send(503, {"error": "stand-in request limit reached"})
            body = self._body() if method in ("POST", "PUT") else b""
            for pattern, handler in ROUTES:
                match = re.fullmatch(pattern, path)
                if match and handler.__name__.startswith(method.lower() + "_"):
                    with hub.lock:
                        return handler(self, body, *match.groups())
            hub.unknown.append(f"{method} {path}")
            self._error(404, "NotFound", f"the stand-in Hub does not serve {method} {path}")

        def do_GET(self):
            self._route("GET")

        def do_HEAD(self):
            self._route("HEAD")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

        # -- writes ------------------------------------------------------------------------------------------------
        def post_create(self, body):
            if not self._token():
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            request = json.loads(body)
            repo_id = f"{request.get('organization') or NAMESPACE}/{request['name']}"
            if repo_id in hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
            hub.repos[repo_id] = {
                "private": request.get("visibility") == "private",
                "branches": {"main": {}},
                "commits": [],
            }
            self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def post_validate_yaml(self, body):
            text = json.loads(body)["content"]
            if text.startswith("---\n"):
                try:
                    yaml.safe_load(text.split("---\n", 2)[1])
                except yaml.YAMLError as error:
                    return self._send(400, {"errors": [{"message": str(error)}]})
            self._send(200, {"warnings": []})

        def post_branch(self, body, repo_id, branch):
            repo = self._repo(repo_id)
            if repo is None:
                return
            if branch in repo["branches"]:
                return self._error(409, "BranchExists", f"Branch {branch} already exists")
            repo["branches"][branch] = dict(repo["branches"]["main"])
            self._send(200, {})

        def post_preupload(self, body, repo_id, revision):
            repo = self._repo(repo_id)
            if repo is None:
                return
            files = []
            for entry in json.loads(body)["files"]:
                binary = b"\0" in base64.b64decode(entry["sample"])  # the Hub's rule: binary files go to LFS
                files.append(
                    {
                        "path": entry["path"],
                        "uploadMode": "lfs" if binary else "regular",
                        "shouldIgnore": False,
                        "oid": None,
                    }
                )
            self._send(200, {"files": files, "commitOid": "0" * 40})

        def post_lfs_batch(self, body, repo_id):
            if self._repo(repo_id) is None:
                return
            objects = []
            for item in json.loads(body)["objects"]:
                entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
                if item["oid"] not in hub.lfs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{item['oid']}/{item['size']}"}}
                objects.append(entry)
            self._send(200, {"transfer": "basic", "objects": objects})

        def put_lfs_upload(self, body, oid, size):
            if hashlib.sha256(body).hexdigest() != oid or len(body) != int(size):
                return self._error(400, "BadContent", "content does not match its oid and size")
            hub.lfs[oid] = body
            self._send(200, b"")

        def post_commit(self, body, repo_id, revision):
            repo = self._repo(repo_id)
            if repo is None:
                return
            if not self._token():
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            if revision not in repo["branches"]:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            files, summary = dict(repo["branches"][revision]), None
            for line in body.splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    summary = value["summary"]
                elif item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return self._error(422, "LfsMissing", f"{value['path']}: LFS object was never uploaded")
                    files[value["path"]] = hub.lfs[value["oid"]]
                else:
                    return self._error(400, "BadRequest", f"the stand-in does not commit {item['key']}")
            oid = hashlib.sha1(
                json.dumps(sorted((p, hashlib.sha1(c).hexdigest()) for p, c in files.items())).encode()
                + str(len(repo["commits"])).encode()
            ).hexdigest()
            repo["branches"][revision] = files
            repo["commits"].append({"oid": oid, "summary": summary, "revision": revision, "files": files})
            self._send(
                200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}
            )

        # -- reads -------------------------------------------------------------------------------------------------
        def _commit_of(self, repo, revision):
            return next((c["oid"] for c in reversed(repo["commits"]) if c["revision"] == revision), "0" * 40)

        def _snapshot(self, repo, revision, head=False):
            """The files at a branch or a commit (the client resolves files by the commit it was told)."""
            files = repo["branches"].get(revision)
            if files is None:
                files = next((c["files"] for c in repo["commits"] if c["oid"] == revision), None)
            if files is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return files

        def get_agent_harnesses(self, body):
            self._send(404, {"error": "not served by the stand-in"})  # the client's optional user-agent registry

        def get_model_info(self, body, repo_id, revision=None):
            repo = self._repo(repo_id)
            if repo is None:
                return
            files = self._snapshot(repo, revision or "main")
            if files is None:
                return
            branch = revision or "main"
            sha = self._commit_of(repo, branch) if branch in repo["branches"] else branch
            self._send(
                200,
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "private": repo["private"],
                    "sha": sha,
                    "siblings": [{"rfilename": path} for path in sorted(files)],
                },
            )

        def get_tree(self, body, repo_id, revision, folder):
            repo = self._repo(repo_id)
            if repo is None:
                return
            files = self._snapshot(repo, revision)
            if files is None:
                return
            prefix = folder.strip("/") + "/" if folder and folder.strip("/") else ""
            entries = [
                {"type": "file", "path": path, "size": len(content), "oid": hashlib.sha1(content).hexdigest()}
                for path, content in sorted(files.items())
                if path.startswith(prefix) and "/" not in path[len(prefix) :]
            ]
            self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

        def _resolve(self, repo_id, revision, path, head):
            repo = self._repo(repo_id, head=head)
            if repo is None:
                return
            files = self._snapshot(repo, revision, head=head)
            if files is None:
                return
            content = files.get(path)
            if content is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", head=head)
            commit = self._commit_of(repo, revision) if revision in repo["branches"] else revision
            self._send(
                200, content, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(content).hexdigest()}"'}, head=head
            )

        def get_resolve(self, body, repo_id, revision, path):
            self._resolve(repo_id, revision, path, head=False)

        def head_resolve(self, body, repo_id, revision, path):
            self._resolve(repo_id, revision, path, head=True)

    repo = r"([\w.-]+/[\w.-]+)"
    ROUTES = [
        (r"/api/agent-harnesses", Handler.get_agent_harnesses),
        (r"/api/repos/create", Handler.post_create),
        (r"/api/validate-yaml", Handler.post_validate_yaml),
        (rf"/api/models/{repo}/branch/([^/]+)", Handler.post_branch),
        (rf"/api/models/{repo}/preupload/([^/]+)", Handler.post_preupload),
        (rf"/{repo}\.git/info/lfs/objects/batch", Handler.post_lfs_batch),
        (r"/lfs-upload/([0-9a-f]{64})/(\d+)", Handler.put_lfs_upload),
        (rf"/api/models/{repo}/commit/([^/]+)", Handler.post_commit),
        (rf"/api/models/{repo}", Handler.get_model_info),
        (rf"/api/models/{repo}/revision/([^/]+)", Handler.get_model_info),
        (rf"/api/models/{repo}/tree/([^/]+)/?(.*)", Handler.get_tree),
        (rf"/{repo}/resolve/([^/]+)/(.+)", Handler.get_resolve),
        (rf"/{repo}/resolve/([^/]+)/(.+)", Handler.head_resolve),
    ]
    return Handler
