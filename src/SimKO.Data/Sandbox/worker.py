# SimKO sandbox worker (embedded in SimKO.Data; see Sandbox/SandboxPool.cs).
# Reads one JSON request per line on stdin ({"id", "code"}), runs each program in a fresh child
# with its own temporary folder and limits, and answers one JSON line per request on stdout
# ({"id", "kind", "type", "message", "seconds", "output_bytes"}); exits at end of input.
# The first line it writes is {"ready": ...} once it is set up.
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


def program(code, nonce):
    """Runs in the program's own process: executes the code, writes the verdict to RESULT_FD."""
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
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    verdict["nonce"] = nonce
    try:
        os.write(RESULT_FD, (json.dumps(verdict) + "\n").encode())
    finally:
        os._exit(0)


def exit_code(status):
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def child(code, tmp, out_w, res_w, nonce):
    """The program's process: a session of its own, its output to the pipes, its folder, limits, no privileges."""
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
    program(code, nonce)


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


def run(code, serial):
    tmp = os.path.join(TMP_ROOT, "p%d" % serial)
    os.mkdir(tmp, 0o700)
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    nonce = os.urandom(16).hex()
    sys.stdout.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            child(code, tmp, out_w, res_w, nonce)
        finally:
            os._exit(121)
    os.close(out_w)
    os.close(res_w)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (out_r, res_r, pidfd):
        poller.register(fd, select.POLLIN)
    deadline = start + CFG["wall_seconds"]
    out_bytes, res_buf, limit, exited = 0, b"", None, False
    open_pipes = {out_r, res_r}
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
                elif len(res_buf) < 1 << 16:
                    res_buf += data
    if not exited:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    kill_everything_else(pid)
    os.set_blocking(res_r, False)
    try:
        while len(res_buf) < 1 << 16:
            data = os.read(res_r, 1 << 16)
            if not data:
                break
            res_buf += data
    except BlockingIOError:
        pass
    for fd in (out_r, res_r, pidfd):
        os.close(fd)
    answer = {"seconds": round(seconds, 6), "output_bytes": out_bytes}
    verdict = None
    for line in res_buf.split(b"\n"):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict) and v.get("nonce") == nonce:
            verdict = v
    code_ = exit_code(status)
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
    wipe(TMP_ROOT)
    return answer


def reward_child(req, start, tmp, out_w, res_w, nonce):
    """A reward batch's process: as child(), then compute_score over items[start:], one result line each."""
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
    import math, traceback
    sys.argv = ["reward"]
    filename = req["filename"]

    def emit(obj):
        obj["nonce"] = nonce
        os.write(RESULT_FD, (json.dumps(obj) + "\n").encode())

    def where(e):
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
        f = frames[-1] if frames else None
        text = "%s: %s" % (type(e).__name__, e)
        return text[:1000], ("%s:%d: %s" % (f.filename, f.lineno, (f.line or "").strip())[:300]) if f else filename

    import linecache
    linecache.cache[filename] = (len(req["source"]), None, req["source"].splitlines(True), filename)
    try:
        scope = {"__name__": "simko_reward", "__file__": filename}
        exec(compile(req["source"], filename, "exec"), scope)
        fn = scope.get(req["function"])
        if not callable(fn):
            emit({"fatal": "%s has no function '%s'" % (filename, req["function"]), "line": filename})
            os._exit(0)
    except BaseException as e:  # noqa: BLE001
        msg, line = where(e)
        if isinstance(e, SyntaxError):
            line = "%s:%s: %s" % (filename, e.lineno, (e.text or "").strip())
        emit({"fatal": msg, "line": line})
        os._exit(0)

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
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(0)


def run_reward(req, serial):
    """Scores req["items"] with the user's function: one child runs the batch, writing a result per item;
    a child that runs past the per-item wall limit, prints too much or dies is killed, the item in
    progress gets the error, and a fresh child goes on from the next item."""
    items = req["items"]
    results = [None] * len(items)
    start = 0
    while start < len(items):
        tmp = os.path.join(TMP_ROOT, "r%d_%d" % (serial, start))
        os.mkdir(tmp, 0o700)
        out_r, out_w = os.pipe()
        res_r, res_w = os.pipe()
        nonce = os.urandom(16).hex()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                reward_child(req, start, tmp, out_w, res_w, nonce)
            finally:
                os._exit(121)
        os.close(out_w)
        os.close(res_w)
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, res_r, pidfd):
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + CFG["wall_seconds"]
        out_bytes, buf, limit, exited, fatal = 0, b"", None, False, None
        open_pipes = {out_r, res_r}
        nxt = start

        def take(buf):
            nonlocal nxt, fatal
            *lines, rest = buf.split(b"\n")
            for line in lines:
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(v, dict) or v.get("nonce") != nonce:
                    continue
                del v["nonce"]
                if "fatal" in v:
                    fatal = v
                elif isinstance(v.get("i"), int) and v["i"] == nxt:
                    results[nxt] = v
                    nxt += 1
            return rest

        while not exited and limit is None and fatal is None:
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
                    else:
                        before = nxt
                        buf = take(buf + data)
                        if nxt > before:
                            deadline = time.monotonic() + CFG["wall_seconds"]
                            out_bytes = 0
        if not exited:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        kill_everything_else(pid)
        os.set_blocking(res_r, False)
        try:
            while True:
                data = os.read(res_r, 1 << 16)
                if not data:
                    break
                buf = take(buf + data)
        except BlockingIOError:
            pass
        for fd in (out_r, res_r, pidfd):
            os.close(fd)
        wipe(TMP_ROOT)
        if fatal is not None:
            return {"kind": "reward", "fatal": fatal["fatal"], "line": fatal.get("line", "")}
        if nxt < len(items):
            code_ = exit_code(status)
            if limit == "timeout":
                why = "timed out (no result within %g s)" % CFG["wall_seconds"]
            elif limit == "output":
                why = "printed more than %d bytes" % CFG["max_output_bytes"]
            elif code_ - 128 == signal.SIGXCPU:
                why = "ran past its CPU time limit"
            elif code_ > 128:
                why = "killed by signal %d" % (code_ - 128)
            else:
                why = "exited with code %d" % code_
            results[nxt] = {"i": nxt, "error": why, "line": req["filename"]}
            nxt += 1
        start = nxt
    return {"kind": "reward", "results": results}


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
        answer = run_reward(request, serial) if request.get("kind") == "reward" else run(request["code"], serial)
        answer["id"] = request["id"]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


main()
