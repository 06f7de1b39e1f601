"""Code prepended to a subprocess's script to prove it runs without a package: any import of it fails."""


def blocker(package: str) -> str:
    """Python source that makes `import <package>` (and its submodules) raise ImportError from then on."""
    return f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == {package!r} or name.startswith({package + "."!r}):
            raise ImportError("{package} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


TORCH_BLOCKER = blocker("torch")
