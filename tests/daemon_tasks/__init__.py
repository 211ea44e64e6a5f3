"""Task modules and helpers for the daemon's end-to-end tests."""
