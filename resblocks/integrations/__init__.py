"""Optional bridges to other libraries. Nothing here is imported by ``import resblocks``."""
