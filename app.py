"""Serve RLHF Studio on http://127.0.0.1:7860: `python app.py`. Also the entry point on Hugging Face Spaces."""

from components.app import main

if __name__ == "__main__":
    main()
