"""``python -m tickets`` and the ``tickets`` command."""

from __future__ import annotations


def main() -> None:
    try:
        from .cli import main as command_line
    except KeyboardInterrupt:  # Ctrl-C while click and rich load: nothing began
        raise SystemExit(130) from None
    command_line()


if __name__ == "__main__":
    main()
