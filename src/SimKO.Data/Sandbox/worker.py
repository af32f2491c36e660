# SimKO sandbox worker (embedded in SimKO.Data; see Sandbox/SandboxPool.cs).
# Reads one JSON request per line on stdin and answers one JSON line per request on stdout; exits at
# end of input. The first line it writes is {"ready": ...} once it is set up. Requests:
#   {"id", "code"}: runs the program in a fresh child ({"id", "kind", "type", "message", "seconds", "output_bytes"});
#   {"id", "kind": "reward", "source", "filename", "function", "items"}: verl's compute_score over the items
#     ({"results": [{"i", "score", "extra", "not_numbers"} | {"i", "error", "line"}]} or {"fatal", "line"});
#   {"id", "kind": "chat", "template", "variables", "items": [{"messages", "add_generation_prompt"}]}: a chat
#     template rendered per item ({"results": [{"i", "text"} | {"i", "error"}]} or {"fatal"}).
# Every one runs in children started and watched by supervise(): one poll loop for all of them.
#
# Per program: fork one child, in a session of its own, which sets the rlimits, drops every
# capability and runs the code. In a sandbox the worker is alone in its pid namespace (its init, or
# the child of bubblewrap's), so when the program ends, or runs past a limit, kill(-1, SIGKILL)
# kills every process the program started, wherever it went, and the worker reaps them all before
# the next program. Signals from programs cannot reach it: init ignores them, SIGINT is ignored and
# it is not dumpable (no ptrace). Without isolation only the program's process group is killed.
import ctypes, gc, json, os, resource, select, shutil, signal, sys, time

CFG = json.loads(sys.argv[1])
TMP_ROOT = CFG["tmp"]
LIBC = ctypes.CDLL(None, use_errno=True)
RESULT_FD = 3
MAX_FDS = 256  # the worker lowers its own open-file limit to this, so closing below it closes all
resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_FDS, MAX_FDS))
DEVNULL = os.open(os.devnull, os.O_RDWR)


def drop_privileges():
    """No capabilities left, none regained by exec (bounding set emptied, no_new_privs)."""
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()                  # effective, permitted, inheritable = 0 (two words each)
    if LIBC.capset(header, data) != 0:
        os._exit(120)
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def set_limits():
    mem = CFG["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = CFG["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    nproc = CFG["max_processes"]
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    fsize = CFG["file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def program(code, emit):
    """Runs in the program's own process: executes the code, emits the verdict."""
    sys.argv = ["program"]
    try:
        exec(compile(code, "<program>", "exec"), {})
        verdict = {"kind": "passed"}
    except MemoryError:
        verdict = {"kind": "memory"}
    except BaseException as e:  # noqa: BLE001 - a program's SystemExit fails it too, as in HumanEval
        try:
            message = str(e)
        except BaseException:  # noqa: BLE001
            message = "(unprintable)"
        verdict = {"kind": "failed", "type": type(e).__name__, "message": message[:1000]}
    emit(verdict)


def exit_code(status):
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def enter_child(tmp, out_w, res_w):
    """The child's first steps: a session of its own, its output to the pipes, its folder, limits, no privileges."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.dup2(DEVNULL, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.dup2(res_w, RESULT_FD)
    os.closerange(RESULT_FD + 1, MAX_FDS)
    os.chdir(tmp)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"})
    set_limits()
    drop_privileges()


def kill_everything_else(pid):
    """Kills and reaps every process the program left: in the sandbox's own pid namespace, all but the
    worker (and its init); without one, the program's process group."""
    if CFG["isolated"]:
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wipe(root):
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


MAX_RESULT_LINE = 64 << 20  # a result line longer than this (a runaway rendering) is dropped


def supervise(tag, body, on_result):
    """Runs body(emit) in a fresh child (enter_child: own session, folder, limits, no privileges) and
    watches it with one poll loop: its output is counted and, past the output limit, it is stopped; each
    result line it emits (a JSON object carrying this run's nonce) goes to on_result, which returns whether
    it was progress (then the wall deadline and the output count start again, so a batch gets the wall
    limit per item); past the deadline it is stopped. Afterwards every process it left is killed and the
    temporary folders are wiped. Returns (limit: None | "timeout" | "output", exit code, seconds, output bytes)."""
    tmp = os.path.join(TMP_ROOT, tag)
    os.mkdir(tmp, 0o700)
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    nonce = os.urandom(16).hex()

    def emit(obj):
        obj["nonce"] = nonce
        os.write(RESULT_FD, (json.dumps(obj) + "\n").encode())

    sys.stdout.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            enter_child(tmp, out_w, res_w)
            body(emit)
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001
                pass
            os._exit(0)
        finally:
            os._exit(121)
    os.close(out_w)
    os.close(res_w)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (out_r, res_r, pidfd):
        poller.register(fd, select.POLLIN)
    deadline = start + CFG["wall_seconds"]
    out_bytes, buf, limit, exited = 0, b"", None, False
    open_pipes = {out_r, res_r}

    def take(data):
        """Passes each complete result line of this run to on_result; true when one was progress."""
        nonlocal buf
        *lines, buf = (buf + data).split(b"\n")
        if len(buf) > MAX_RESULT_LINE:
            buf = b""
        progress = False
        for line in lines:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict) and v.pop("nonce", None) == nonce:
                progress = bool(on_result(v)) or progress
        return progress

    while not exited and limit is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            limit = "timeout"
            break
        for fd, _ in poller.poll(max(1, int(remaining * 1000))):
            if fd == pidfd:
                exited = True
            elif fd in open_pipes:
                data = os.read(fd, 1 << 16)
                if not data:
                    poller.unregister(fd)
                    open_pipes.discard(fd)
                elif fd == out_r:
                    out_bytes += len(data)
                    if out_bytes > CFG["max_output_bytes"]:
                        limit = "output"
                elif take(data):
                    deadline = time.monotonic() + CFG["wall_seconds"]
                    out_bytes = 0
    if not exited:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    kill_everything_else(pid)
    os.set_blocking(res_r, False)
    try:
        while True:
            data = os.read(res_r, 1 << 16)
            if not data:
                break
            take(data)
    except BlockingIOError:
        pass
    for fd in (out_r, res_r, pidfd):
        os.close(fd)
    wipe(TMP_ROOT)
    return limit, exit_code(status), seconds, out_bytes


def why_stopped(limit, code_):
    """Why a child ended before it gave every result."""
    if limit == "timeout":
        return "timed out (no result within %g s)" % CFG["wall_seconds"]
    if limit == "output":
        return "printed more than %d bytes" % CFG["max_output_bytes"]
    if code_ - 128 == signal.SIGXCPU:
        return "ran past its CPU time limit"
    if code_ > 128:
        return "killed by signal %d" % (code_ - 128)
    return "exited with code %d" % code_


def run(code, serial):
    verdicts = []
    limit, code_, seconds, out_bytes = supervise("p%d" % serial, lambda emit: program(code, emit), lambda v: verdicts.append(v))
    answer = {"seconds": round(seconds, 6), "output_bytes": out_bytes}
    verdict = verdicts[-1] if verdicts else None
    if limit is not None:
        answer["kind"] = limit
    elif verdict is not None:
        answer["kind"] = verdict["kind"]
        answer["type"] = verdict.get("type", "")
        answer["message"] = verdict.get("message", "")
    elif code_ - 128 == signal.SIGXCPU:
        answer["kind"] = "timeout"
        answer["message"] = "CPU time limit"
    elif code_ > 128:
        answer.update(kind="failed", type="Killed", message="killed by signal %d" % (code_ - 128))
    else:
        answer.update(kind="failed", type="Exit", message="exited with code %d before the program finished" % code_)
    return answer


def run_batch(req, serial, prefix, body):
    """Runs body(req, start, emit) over req["items"][start:] in a child, one result line {"i", …} per item
    in order; a child that runs past the per-item wall limit, prints too much or dies is stopped, the item
    in progress gets the error, and a fresh child goes on from the next item. A {"fatal"} line ends the batch."""
    items = req["items"]
    results = [None] * len(items)
    start = 0
    while start < len(items):
        state = {"next": start, "fatal": None}

        def on_result(v):
            if "fatal" in v:
                state["fatal"] = v
                return False
            if isinstance(v.get("i"), int) and v["i"] == state["next"]:
                results[state["next"]] = v
                state["next"] += 1
                return True
            return False

        limit, code_, _, _ = supervise("%s%d_%d" % (prefix, serial, start), lambda emit: body(req, start, emit), on_result)
        if state["fatal"] is not None:
            return {"fatal": state["fatal"]["fatal"], "line": state["fatal"].get("line", "")}
        nxt = state["next"]
        if nxt < len(items):
            results[nxt] = {"i": nxt, "error": why_stopped(limit, code_), "line": req.get("filename", "")}
            nxt += 1
        start = nxt
    return {"results": results}


def reward_body(req, start, emit):
    """A reward batch's process: imports the user's file once, then compute_score over items[start:], one result line each."""
    import math, traceback, linecache
    sys.argv = ["reward"]
    filename = req["filename"]

    def where(e):
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
        f = frames[-1] if frames else None
        text = "%s: %s" % (type(e).__name__, e)
        return text[:1000], ("%s:%d: %s" % (f.filename, f.lineno, (f.line or "").strip())[:300]) if f else filename

    linecache.cache[filename] = (len(req["source"]), None, req["source"].splitlines(True), filename)
    try:
        scope = {"__name__": "simko_reward", "__file__": filename}
        exec(compile(req["source"], filename, "exec"), scope)
        fn = scope.get(req["function"])
        if not callable(fn):
            emit({"fatal": "%s has no function '%s'" % (filename, req["function"]), "line": filename})
            return
    except BaseException as e:  # noqa: BLE001
        msg, line = where(e)
        if isinstance(e, SyntaxError):
            line = "%s:%s: %s" % (filename, e.lineno, (e.text or "").strip())
        emit({"fatal": msg, "line": line})
        return

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, complex)

    for i in range(start, len(req["items"])):
        item = req["items"][i]
        try:
            v = fn(item["data_source"], item["solution_str"], item["ground_truth"], extra_info=item.get("extra_info"))
            extra, notes = {}, []
            if isinstance(v, dict):
                if "score" not in v:
                    raise TypeError("returned a dict without 'score' (keys: %s)" % ", ".join(map(str, v)))
                for k, x in v.items():
                    if k == "score":
                        continue
                    if number(x) and math.isfinite(float(x)):
                        extra[str(k)] = float(x)
                    else:
                        notes.append(str(k))
                v = v["score"]
            if not number(v):
                raise TypeError("returned %s (%s), expected a number or a dict with a number 'score'" % (type(v).__name__, repr(v)[:80]))
            if not math.isfinite(float(v)):
                raise ValueError("returned %r, expected a finite number" % (v,))
            emit({"i": i, "score": float(v), "extra": extra, "not_numbers": notes})
        except MemoryError:
            emit({"i": i, "error": "MemoryError: ran out of its memory limit", "line": filename})
        except BaseException as e:  # noqa: BLE001
            msg, line = where(e)
            emit({"i": i, "error": msg, "line": line})


# Chat templates, rendered as transformers' apply_chat_template does: Jinja2's ImmutableSandboxedEnvironment
# with trim_blocks, lstrip_blocks, the loopcontrols extension and a no-op {% generation %} block, a tojson
# filter that keeps non-ASCII text, and the globals raise_exception and strftime_now. The template is
# compiled here, in the worker (kept for the next request), and rendered in a child under the limits.
COMPILED = {}


def chat_environment():
    import datetime
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """{% generation %}…{% endgeneration %} (transformers marks the assistant's tokens with it): rendered as its body."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def compiled_template(text):
    """The compiled template (cached), or raises ImportError / jinja2.TemplateSyntaxError."""
    t = COMPILED.get(text)
    if t is None:
        if "env" not in COMPILED:
            COMPILED["env"] = chat_environment()
        if len(COMPILED) > 8:
            COMPILED.clear()
            COMPILED["env"] = chat_environment()
        t = COMPILED[text] = COMPILED["env"].from_string(text)
    return t


def template_line(e):
    """The template's line where a rendering error happened, from the traceback (Jinja maps it to the template)."""
    import traceback
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def chat_body(template):
    def body(req, start, emit):
        sys.argv = ["chat"]
        variables = req.get("variables") or {}
        for i in range(start, len(req["items"])):
            item = req["items"][i]
            try:
                text = template.render(messages=item["messages"], tools=None, documents=None,
                                       add_generation_prompt=bool(item.get("add_generation_prompt", True)), **variables)
                emit({"i": i, "text": text})
            except MemoryError:
                emit({"i": i, "error": "MemoryError: rendering ran out of its memory limit"})
            except BaseException as e:  # noqa: BLE001
                line = template_line(e)
                emit({"i": i, "error": ("line %d: " % line if line else "") + ("%s: %s" % (type(e).__name__, e))[:1000]})
    return body


def run_chat(req, serial):
    try:
        template = compiled_template(req["template"])
    except ImportError as e:
        return {"fatal": "Jinja2 is not available to the sandbox's python (%s); install Debian's python3-jinja2" % e}
    except Exception as e:  # noqa: BLE001 - jinja2.TemplateSyntaxError and anything the compiler raises
        line = getattr(e, "lineno", None)
        return {"fatal": ("line %d: " % line if line else "") + ("%s: %s" % (type(e).__name__, e))[:1000]}
    return run_batch(req, serial, "c", chat_body(template))


def main():
    gc.collect()
    gc.freeze()  # children fork from here: a collector that skips these objects copies fewer pages
    if CFG["isolated"] and os.getpid() > 2:
        sys.exit("the sandbox worker is not in a pid namespace of its own (pid %d); refusing to start" % os.getpid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    LIBC.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: programs cannot ptrace the worker
    visible = [p for p in CFG.get("must_be_hidden", []) if p and os.path.exists(p)]
    wipe(TMP_ROOT)
    sys.stdout.write(json.dumps({"ready": True, "pid_namespace": bool(CFG["isolated"]), "visible": visible}) + "\n")
    sys.stdout.flush()
    serial = 0
    for line in sys.stdin.buffer:
        request = json.loads(line)
        serial += 1
        kind = request.get("kind")
        if kind == "reward":
            answer = run_batch(request, serial, "r", reward_body)
        elif kind == "chat":
            answer = run_chat(request, serial)
        else:
            answer = run(request["code"], serial)
        answer["id"] = request["id"]
        if kind:
            answer["kind"] = kind
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


main()
