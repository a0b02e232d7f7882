#!/usr/bin/env python3
"""A client that never reads, against any ZooKeeper-compatible server, side by side.

Usage: scripts/slow-reader.py PORT SERVER_PID

Creates /big (1,000,000 bytes) and /small on 127.0.0.1:PORT, then one connection pipelines
3,000 getData of /big and never reads its socket. After 3 s it prints the server's resident
memory (VmRSS of SERVER_PID) and the latency of 50 reads of /small by another client.
The README's "one client cannot exhaust the server" figures come from this script, run
against Apache ZooKeeper 3.8 and geokeeper on the same machine.
"""
import socket, struct, sys, time, subprocess
port=int(sys.argv[1]); pid=int(sys.argv[2])
def conn():
    s=socket.create_connection(('127.0.0.1',port))
    body=struct.pack('>iqiq',0,0,30000,0)+struct.pack('>i',16)+b'\0'*16+b'\0'
    s.sendall(struct.pack('>i',len(body))+body)
    n=struct.unpack('>i',s.recv(4))[0]; s.recv(n); return s
def string(x): x=x.encode(); return struct.pack('>i',len(x))+x
def call(s, xid, op, body):
    s.sendall(struct.pack('>iii',8+len(body),xid,op)+body)
    n=struct.unpack('>i',s.recv(4))[0]; b=b''
    while len(b)<n: b+=s.recv(n-len(b))
    return b
def rss(pid):
    for l in open('/proc/%d/status'%pid):
        if l.startswith('VmRSS'): return int(l.split()[1])//1024
a=conn()
acl=struct.pack('>i',1)+struct.pack('>i',31)+string('world')+string('anyone')
for path,n in (('/big',1000000),('/small',10)):
    r=call(a,1,1,string(path)+struct.pack('>i',n)+b'x'*n+acl+struct.pack('>i',0))
    assert struct.unpack('>iqi',r[:16])[2] in (0,-110), r[:16]
print('rss before', rss(pid), 'MB')
slow=conn(); slow.setblocking(False)
req=b''.join(struct.pack('>iii',8+len(string('/big'))+1,x,4)+string('/big')+b'\0' for x in range(1,3001))
sent=0; t=time.time()
while time.time()-t<3:
    try: sent+=slow.send(req[sent:])
    except BlockingIOError: time.sleep(0.01)
    if sent>=len(req): time.sleep(0.05)
print('slow client: %d of %d request bytes taken' % (sent, len(req)))
print('rss while slow client reads nothing', rss(pid), 'MB')
b=conn(); lat=[]
for i in range(50):
    t0=time.time(); call(b,i+1,4,string('/small')+b'\0'); lat.append((time.time()-t0)*1000)
lat.sort(); print('other client: 50 reads, median %.2f ms, max %.2f ms' % (lat[25], lat[-1]))
print('rss', rss(pid), 'MB')
