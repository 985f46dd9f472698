"""Serve RLHF Studio on http://127.0.0.1:7860: `python app.py`. Also the entry point on Hugging Face Spaces (README.md's
front matter names it), where it binds 0.0.0.0 or GRADIO_SERVER_NAME, and the port GRADIO_SERVER_PORT or PORT."""

from components.app import main

if __name__ == "__main__":
    main()
