import os, sys
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_root, os.path.join(_root, "lib")]
from dcn.tools import test_main  # noqa: E402
if __name__ == "__main__": test_main("fpn")
