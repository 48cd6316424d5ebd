"""The lab: network namespaces, a veth pair, raw frames and real HTTP traffic for the XDP extractor.

``lab.Lab`` builds and tears down the namespaces; ``capture`` receives frames, ``servers`` and
``clients`` run real HTTP on both sides; ``addressing`` holds the fixed addresses.
"""
