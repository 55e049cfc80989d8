"""The smallest WSGI application: gunicorn's workers answer 200 with their pid."""
import os


def app(environ, start_response):
    body = f"{os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
