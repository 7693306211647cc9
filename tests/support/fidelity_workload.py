"""The scripted workload of tests/fidelity_test.ts: every lifetime case it checks.

It records its own truth (pids it made, the argv it passed, the parent it
expects, its own CLOCK_MONOTONIC around each fork and exit, the wait status it
reaped) to the JSON file named by argv[1]; argv[2] is a scratch directory for
core dumps. Protocol on stdio: it prints "ready <pid>" and waits for a line on
stdin before the first case (so watchers can subscribe to its sub-tree), and
prints "done" after writing the truth file.

The root is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans of the
reparent and double-fork cases are re-parented to it (kernel/exit.c
find_new_reaper), so it reaps every process it made and knows their status.
"""

import ctypes
import json
import os
import signal
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long

PR_SET_NAME = 15  # include/uapi/linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36
PTRACE_DETACH = 17  # include/uapi/linux/ptrace.h
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL, include/uapi/linux/wait.h
# exit(2) of the calling thread only (not exit_group): what pthread_exit() ends in.
SYS_EXIT = {"x86_64": 60, "aarch64": 93}[os.uname().machine]

TRUTH_PATH = sys.argv[1]
CORE_DIR = sys.argv[2]
ROOT = os.getpid()


def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def read(path):
    with open(path, "rb") as f:
        return f.read()


ROOT_ARGV = [a.decode() for a in read("/proc/self/cmdline").split(b"\0")[:-1]]
ROOT_COMM = read("/proc/self/comm").decode().strip()

cases = []


def proc(case, pid, parent, images, start_before, start_after, **extra):
    """One process of a case. images[0] is the image inherited at fork
    (argv None: the parent's), then one per exec, in order."""
    record = {
        "case": case,
        "kind": "process",
        "pid": pid,
        "tid": pid,
        "parent": parent,
        "images": images,
        "startBefore": start_before,
        "startAfter": start_after,
        "endBefore": None,
        "endAfter": None,
        "status": None,
        "renames": [],
    }
    record.update(extra)
    cases.append(record)
    return record


def inherited():
    return {"argv": ROOT_ARGV, "comm": ROOT_COMM}


def image(argv, comm=None):
    return {"argv": argv, "comm": comm if comm is not None else os.path.basename(argv[0])[:15]}


def reap(record, pid=None):
    """waitpid() as the (sub)reaper: the status the parent gets is the truth."""
    _, status = os.waitpid(pid or record["pid"], 0)
    record["endAfter"] = now()
    record["status"] = status
    return status


def pipe_pair():
    r, w = os.pipe()
    return r, w


def child_times(r):
    """Reads the child's own clock reads written to a pipe: 'first last'."""
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return [int(x) for x in data.split()] if data else []


def fork_python(case, body, images=None, **extra):
    """Forks a python child that runs body(write_fd) then exits; the child
    writes its own first and last clock reads to the pipe."""
    r, w = os.pipe()
    before = now()
    pid = os.fork()
    if pid == 0:
        first = now()
        os.close(r)
        try:
            code = body(w)
        except BaseException as error:  # noqa: BLE001 - report and fail the case
            os.write(2, f"workload {case}: {error!r}\n".encode())
            code = 99
        os.write(w, f"{first} {now()}".encode())
        os._exit(code if isinstance(code, int) else 0)
    after = now()
    os.close(w)
    record = proc(case, pid, ROOT, images or [inherited()], before, after, **extra)
    times = child_times(r)
    if len(times) == 2:
        record["endBefore"] = times[1]
    reap(record)
    return record


def fork_exec(case, path, argv, images, before_exec=None):
    before = now()
    pid = os.fork()
    if pid == 0:
        try:
            if before_exec:
                before_exec()
            os.execv(path, argv)
        finally:
            os._exit(127)
    after = now()
    return proc(case, pid, ROOT, images, before, after)


def wait_for_comm(pid, comm):
    """A marker, not a sleep: the child has exec'd once its comm says so."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if read(f"/proc/{pid}/comm").decode().strip() == comm:
                return
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"{pid} never became {comm}")


def case_fork_exit():
    fork_python("fork+exit 3", lambda w: 3)


def case_fork_exec_exit():
    argv = ["sh", "-c", "exit 7"]
    record = fork_exec("fork+exec+exit 7", "/bin/sh", argv, [inherited(), image(argv)])
    reap(record)


def case_signal(name, signum):
    argv = ["sleep", "30"]
    record = fork_exec(name, "/bin/sleep", argv, [inherited(), image(argv)])
    wait_for_comm(record["pid"], "sleep")
    os.kill(record["pid"], signum)
    reap(record)


def case_core():
    argv = ["sh", "-c", "ulimit -c unlimited; kill -SEGV $$"]
    record = fork_exec(
        "SIGSEGV+core", "/bin/sh", argv, [inherited(), image(argv)],
        before_exec=lambda: os.chdir(CORE_DIR),
    )
    reap(record)


def case_setsid():
    fork_python("setsid", lambda w: (os.setsid(), 0)[1])


def case_setuid():
    def body(w):
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        return 0
    fork_python("setuid/setgid", body)


def case_setpriv():
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/true"]
    record = fork_exec(
        "setpriv", "/usr/bin/setpriv", argv, [inherited(), image(argv), image(["/bin/true"])]
    )
    reap(record)


def case_comm_prctl():
    def body(w):
        name = ctypes.create_string_buffer(b"fid-prctl")
        libc.prctl(PR_SET_NAME, ctypes.addressof(name), 0, 0, 0)
        return 0
    fork_python("comm via prctl", body, renames=["fid-prctl"])


def case_comm_procfs():
    def body(w):
        with open("/proc/self/comm", "w") as f:
            f.write("fid-procfs")
        return 0
    fork_python("comm via /proc/self/comm", body, renames=["fid-procfs"])


def case_ptrace():
    argv = ["sleep", "30"]
    record = fork_exec("ptrace attach/detach", "/bin/sleep", argv, [inherited(), image(argv)])
    pid = record["pid"]
    wait_for_comm(pid, "sleep")
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) < 0:
        raise OSError(ctypes.get_errno(), "PTRACE_SEIZE")
    # PTRACE_DETACH needs a stopped tracee: interrupt it and wait for the stop.
    if libc.ptrace(PTRACE_INTERRUPT, pid, None, None) < 0:
        raise OSError(ctypes.get_errno(), "PTRACE_INTERRUPT")
    os.waitpid(pid, WALL)
    if libc.ptrace(PTRACE_DETACH, pid, None, None) < 0:
        raise OSError(ctypes.get_errno(), "PTRACE_DETACH")
    record["tracer"] = {"pid": ROOT, "tid": threading.get_native_id()}
    os.kill(pid, signal.SIGKILL)
    reap(record)


def case_exec_chain():
    argv = ["env", "env", "env", "sleep", "0.3"]
    images = [inherited(), image(argv), image(argv[1:]), image(argv[2:]), image(argv[3:])]
    record = fork_exec("env env env sleep 0.3", "/usr/bin/env", argv, images)
    # The last image is `sleep 0.3`: it lives at least 0.3 s.
    record["minLifetimeNs"] = 300_000_000
    reap(record)


def case_thread():
    """A thread that lives ~200 ms in a process that is 100 ms old when it starts."""
    threads = []

    def body(w):
        time.sleep(0.1)
        mark = {}

        def run():
            mark["first"] = now()
            mark["tid"] = threading.get_native_id()
            time.sleep(0.2)
            mark["last"] = now()

        mark["before"] = now()
        t = threading.Thread(target=run)
        t.start()
        t.join()
        os.write(w, f"T {mark['tid']} {mark['before']} {mark['first']} {mark['last']}\n".encode())
        return 0

    r, w = os.pipe()
    before = now()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        body(w)
        os.write(w, f"E {now()}\n".encode())
        os._exit(0)
    after = now()
    os.close(w)
    record = proc("thread ~200 ms", pid, ROOT, [inherited()], before, after)
    lines = read_all(r).split("\n")
    for line in lines:
        parts = line.split()
        if parts and parts[0] == "T":
            threads.append([int(x) for x in parts[1:]])
        if parts and parts[0] == "E":
            record["endBefore"] = int(parts[1])
    reap(record)
    for tid, t_before, first, last in threads:
        cases.append({
            "case": "thread ~200 ms", "kind": "thread", "pid": pid, "tid": tid,
            "parent": ROOT, "images": [], "startBefore": t_before, "startAfter": first,
            "endBefore": last, "endAfter": record["endAfter"], "status": None, "renames": [],
        })


def read_all(fd):
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data.decode()


def gated_fork(gate):
    """Forks a child that waits until the gate pipe is written: so that
    `procwatch wait` can be armed on its pid before it does anything."""
    before = now()
    pid = os.fork()
    if pid == 0:
        os.close(gate[1])
        os.read(gate[0], 1)
        os.close(gate[0])
        return 0, before, 0
    return pid, before, now()


def case_thread_exec(gate):
    """A non-main thread execs (de_thread: the old leader's exit is reported,
    then the exec of the same pid), and the new image exits 5."""
    argv = ["sh", "-c", "exit 5"]
    pid, before, after = gated_fork(gate)
    if pid == 0:
        try:
            t = threading.Thread(target=lambda: os.execv("/bin/sh", argv))
            t.start()
            time.sleep(30)  # never returns: the exec ends this thread
        finally:
            os._exit(99)
    record = proc("non-main thread exec, exit 5", pid, ROOT, [inherited(), image(argv)], before, after,
                  waited=True)
    return lambda: reap(record)


def case_pthread_exit(gate):
    """The main thread exits alone (exit(2), as pthread_exit does) while
    another thread lives on and ends the process with exit(7)."""
    r, w = os.pipe()
    pid, before, after = gated_fork(gate)
    if pid == 0:
        os.close(r)

        def run():
            first = now()
            tid = threading.get_native_id()
            # Marker: the main thread has exited once /proc shows it a zombie.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                state = read(f"/proc/{os.getpid()}/task/{os.getpid()}/stat").decode()
                if state[state.rindex(")") + 2] == "Z":
                    break
                time.sleep(0.001)
            os.write(w, f"{tid} {first} {now()}".encode())
            os._exit(7)

        os.write(w, f"{now()} ".encode())
        threading.Thread(target=run).start()
        libc.syscall(SYS_EXIT, 0)
        os._exit(98)  # not reached
    os.close(w)
    record = proc("main pthread_exit, thread exits 7", pid, ROOT, [inherited()], before, after,
                  waited=True)

    def finish():
        parts = [int(x) for x in read_all(r).split()]
        reap(record)
        if len(parts) == 4:
            t_before, tid, first, last = parts
            record["endBefore"] = last
            cases.append({
                "case": record["case"], "kind": "thread", "pid": pid, "tid": tid,
                "parent": ROOT, "images": [], "startBefore": t_before, "startAfter": first,
                "endBefore": last, "endAfter": record["endAfter"], "status": None, "renames": [],
            })
    return finish


def cases_for_wait():
    """Processes whose main thread ends before the process does. The
    test arms `procwatch wait` on both pids ("hold"), then says "go"."""
    gate = os.pipe()
    finishers = [case_thread_exec(gate), case_pthread_exit(gate)]
    os.close(gate[0])
    pids = [c["pid"] for c in cases[-2:]]
    print(f"hold {pids[0]} {pids[1]}", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)
    os.write(gate[1], b"xx")
    os.close(gate[1])
    for finish in finishers:
        finish()


def orphan_child(w):
    """In a child whose parent is about to exit: wait (a marker, getppid(),
    not a sleep) until we are re-parented, and tell the root when we saw it:
    every event of ours after that instant has the new parent."""
    parent = os.getppid()
    deadline = time.monotonic() + 10
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.002)
    os.write(w, f"seen {now()} ".encode())
    os.close(w)


def read_orphan(r):
    """The parent's 'pid before after' and the orphan's 'seen ns'."""
    words = read_all(r).split()
    at = words.index("seen")
    numbers = [int(x) for x in words[:at] + words[at + 2:]]
    return numbers[0], numbers[1], numbers[2], int(words[at + 1])


def case_reparent():
    """A child whose parent exits without exec: it is re-parented to us (subreaper)."""
    r, w = os.pipe()
    before = now()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        g_before = now()
        grandchild = os.fork()
        if grandchild == 0:
            orphan_child(w)
            os._exit(4)
        os.write(w, f"{grandchild} {g_before} {now()} ".encode())
        os._exit(0)
    after = now()
    os.close(w)
    parent = proc("reparent", pid, ROOT, [inherited()], before, after)
    g, g_before, g_after, seen = read_orphan(r)
    reap(parent)
    orphan = proc("reparent", g, pid, [inherited()], g_before, g_after,
                  reparent={"after": pid, "to": ROOT, "seenNs": seen})
    reap(orphan)


def case_daemon():
    """Double fork: the first child calls setsid, forks the daemon and exits;
    the daemon (re-parented to us) execs `sleep 0.05`."""
    argv = ["sleep", "0.05"]
    r, w = os.pipe()
    before = now()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        d_before = now()
        daemon = os.fork()
        if daemon == 0:
            orphan_child(w)
            os.chdir("/")
            os.execv("/bin/sleep", argv)
        os.write(w, f"{daemon} {d_before} {now()} ".encode())
        os._exit(0)
    after = now()
    os.close(w)
    first = proc("double-fork daemon", pid, ROOT, [inherited()], before, after)
    d, d_before, d_after, seen = read_orphan(r)
    reap(first)
    daemon = proc("double-fork daemon", d, pid, [inherited(), image(argv)], d_before, d_after,
                  reparent={"after": pid, "to": ROOT, "seenNs": seen}, minLifetimeNs=50_000_000)
    reap(daemon)


def case_many_true():
    for i in range(100):
        argv = ["true", f"fid-{i}"]
        record = fork_exec("100 x /bin/true", "/bin/true", argv, [inherited(), image(argv)])
        reap(record)


def kill_descendants():
    """After a failed case: SIGKILL whatever is left of our sub-tree and reap
    it (as the subreaper, orphans are our children), so nothing outlives us."""
    while True:
        parents = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    stat = read(f"/proc/{name}/stat").decode()
                    parents[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
                except (OSError, ValueError):
                    pass
        tree, grew = {ROOT}, True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        tree.discard(ROOT)
        if not tree:
            break
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.01)


def main():
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    print(f"ready {ROOT}", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)
    go = now()
    case_fork_exit()
    case_fork_exec_exit()
    case_signal("SIGKILL", signal.SIGKILL)
    case_signal("SIGTERM", signal.SIGTERM)
    case_core()
    case_setsid()
    case_setuid()
    case_setpriv()
    case_comm_prctl()
    case_comm_procfs()
    case_ptrace()
    case_exec_chain()
    case_thread()
    cases_for_wait()
    case_reparent()
    case_daemon()
    case_many_true()
    # Anything left (there should be nothing): reap it, so our exit is the sub-tree's last event.
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    truth = {"root": ROOT, "rootArgv": ROOT_ARGV, "rootComm": ROOT_COMM, "goNs": go,
             "endNs": now(), "processes": cases}
    with open(TRUTH_PATH, "w") as f:
        json.dump(truth, f)
    print("done", flush=True)


try:
    main()
except BaseException:
    kill_descendants()
    raise
