"""The package version, in a module of its own so submodules can name it without importing the
package root (which would form an import cycle with the lazily loaded parts)."""

__version__ = "0.1.0"
