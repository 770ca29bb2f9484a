/// Self-signed certificates for the emulator's TLS (OpenSSL API): an EC P-256 key and
/// an X.509 v3 certificate that is its own trust anchor (CA:TRUE), so a client can
/// pass it as `--ca-file` and verify the peer and its host name for real.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace orgpatch::emulator {

/// A certificate and its private key, PEM encoded.
struct pem_pair {
  std::string cert_pem;
  std::string key_pem;
};

/// Where `write_self_signed_cert` put its files.
struct cert_paths {
  std::filesystem::path cert;  ///< DIR/cert.pem
  std::filesystem::path key;   ///< DIR/key.pem (mode 0600)
};

/// Makes a self-signed certificate valid from one hour ago for about a year, with a
/// subjectAltName of the given DNS names and IP addresses (none: no SAN at all, so no
/// host name matches), CN = the first DNS name (or "orgpatch-emulator"),
/// basicConstraints CA:TRUE (critical), keyUsage digitalSignature + keyCertSign,
/// extendedKeyUsage serverAuth. Throws std::runtime_error with OpenSSL's reason.
pem_pair make_self_signed_cert(const std::vector<std::string>& dns_names,
                               const std::vector<std::string>& ip_addresses);

/// make_self_signed_cert, written to `dir`/cert.pem and `dir`/key.pem (the key 0600,
/// both replaced atomically); creates `dir` if needed. Throws std::runtime_error.
cert_paths write_self_signed_cert(const std::filesystem::path& dir,
                                  std::vector<std::string> dns_names = {"localhost"},
                                  std::vector<std::string> ip_addresses = {"127.0.0.1"});

}  // namespace orgpatch::emulator
