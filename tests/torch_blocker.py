"""Code prepended to a subprocess's script to prove it needs no torch: any import of torch fails."""

TORCH_BLOCKER = """
import sys
class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _BlockTorch())
"""
