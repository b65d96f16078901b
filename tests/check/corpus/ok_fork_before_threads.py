"""The fix of bad_fork_while_logging.py: fork before any other thread exists.

(https://github.com/DataDog/dd-trace-py/pull/18900.) The child logs safely; the
logging thread starts after the fork.
"""

import logging
import os
import threading

log = logging.getLogger("app")
log.propagate = False
log.addHandler(logging.NullHandler())

pid = os.fork()
if pid == 0:
    log.warning("child")
    os._exit(0)
t = threading.Thread(target=log.warning, args=("parent",))
t.start()
t.join()
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
