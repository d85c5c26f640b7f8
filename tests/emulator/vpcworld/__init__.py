"""vpcworld: an emulated AWS VPC for vpc-ipam's tests (Python standard library only).

One server process (server.py) holds the EC2 state (model.py), answers the EC2
Query API (ec2api.py, rendered by ec2xml.py, authenticated by sigv4.py) and
IMDSv2 (imds.py), plumbs nodes, ENIs and the VPC fabric into network
namespaces (fabric.py over netns.py), shapes latency, throttling and faults
(faults.py), and offers a JSON control API on loopback (control.py). The CLI
(cli.py, run as tests/emulator/vpc-world) brings a world up and down.
"""
