#!/usr/bin/python3
"""A TLS front inside the guest: accepts TLS on 127.0.0.1:PORT with the certificate and key
given, and pipes each connection's bytes to the upstream (the host's ES-API server, through
QEMU's 10.0.2.2). What an HTTPS load balancer before a cluster is to the agent.

    tls_front.py PORT CERT KEY UPSTREAM_HOST UPSTREAM_PORT
"""
import socket
import ssl
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, context, upstream):
    try:
        tls = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError):
        client.close()
        return
    back = socket.create_connection(upstream, timeout=30)
    threading.Thread(target=pipe, args=(back, tls), daemon=True).start()
    pipe(tls, back)


def main():
    port, cert, key, host, up_port = sys.argv[1:6]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", int(port)))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, context, (host, int(up_port))),
                         daemon=True).start()


if __name__ == "__main__":
    main()
