// Self-signed certificate generation with OpenSSL 3's API.
#include "emulator/cert.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace orgpatch::emulator {
namespace {

template <auto Free>
struct openssl_deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;

[[noreturn]] void fail(const std::string& what) {
  std::string msg = "self-signed certificate: " + what;
  if (const unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  throw std::runtime_error(msg);
}

void add_extension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  ext_ptr ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str())};
  if (!ext) fail("extension " + std::string(OBJ_nid2sn(nid)) + " = " + value);
  if (X509_add_ext(cert, ext.get(), -1) != 1) fail("adding extension " + std::string(OBJ_nid2sn(nid)));
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

/// Writes `text` to `path` through a temporary file renamed over it, with `mode`.
void write_file(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + tmp.string());
  // The file may have existed with wider permissions.
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "cannot chmod " + tmp.string());
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::system_error(err, std::generic_category(), "cannot write " + tmp.string());
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) throw std::system_error(errno, std::generic_category(), "cannot write " + tmp.string());
  std::filesystem::rename(tmp, path);
}

}  // namespace

pem_pair make_self_signed_cert(const std::vector<std::string>& dns_names,
                               const std::vector<std::string>& ip_addresses) {
  pkey_ptr key{EVP_EC_gen("P-256")};
  if (!key) fail("generating an EC P-256 key");

  x509_ptr cert{X509_new()};
  if (!cert) fail("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("setting the version");

  // A random positive 127-bit serial, so that two certificates never collide in a client cache.
  bn_ptr serial{BN_new()};
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr)
    fail("setting the serial number");

  // Valid from an hour ago (clock skew) for a year.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) == nullptr)
    fail("setting the validity");

  const std::string cn = dns_names.empty() ? "orgpatch-emulator" : dns_names.front();
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("orgpatch-emulator"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                                 -1, -1, 0) != 1)
    fail("setting the subject");
  if (X509_set_issuer_name(cert.get(), name) != 1) fail("setting the issuer");
  if (X509_set_pubkey(cert.get(), key.get()) != 1) fail("setting the public key");

  add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& dns : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + dns;
  for (const auto& ip : ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
  if (!san.empty()) add_extension(cert.get(), NID_subject_alt_name, san);

  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) fail("signing");

  pem_pair out;
  bio_ptr cert_bio{BIO_new(BIO_s_mem())};
  if (!cert_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) fail("writing the certificate");
  out.cert_pem = bio_text(cert_bio.get());
  bio_ptr key_bio{BIO_new(BIO_s_mem())};
  if (!key_bio || PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("writing the private key");
  out.key_pem = bio_text(key_bio.get());
  return out;
}

cert_paths write_self_signed_cert(const std::filesystem::path& dir, std::vector<std::string> dns_names,
                                  std::vector<std::string> ip_addresses) {
  const pem_pair pem = make_self_signed_cert(dns_names, ip_addresses);
  std::filesystem::create_directories(dir);
  cert_paths paths{dir / "cert.pem", dir / "key.pem"};
  write_file(paths.key, pem.key_pem, 0600);
  write_file(paths.cert, pem.cert_pem, 0644);
  return paths;
}

}  // namespace orgpatch::emulator
