"""Test doubles shipped with edgecompress: a stand-in ``adb`` client and phone (:mod:`.phone`),
for testing code that drives Android devices without one attached."""
