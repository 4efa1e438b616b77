//! Pushing packages to and pulling them from an OCI registry, with
//! `oci-client`. The manifest and blobs go over byte for byte, so a
//! package's digest is the same on disk and in the registry, and a pulled
//! package is checked exactly as a file is.

use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{Error, Result};
use crate::package::Package;

const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP instead of HTTPS: for a registry on this machine
    /// or a test.
    pub plain_http: bool,
    /// A user name and password for HTTP basic authentication; anonymous
    /// without.
    pub basic_auth: Option<(String, String)>,
}

impl RegistryOptions {
    fn client(&self) -> Client {
        // reqwest's rustls needs a process-wide crypto provider; ring is the
        // one lettre already brings. A second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(oci_client::client::ClientConfig {
            protocol: if self.plain_http {
                oci_client::client::ClientProtocol::Http
            } else {
                oci_client::client::ClientProtocol::Https
            },
            ..Default::default()
        })
    }

    fn auth(&self) -> RegistryAuth {
        match &self.basic_auth {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

fn reference(r: &str) -> Result<Reference> {
    r.parse().map_err(|e| {
        Error::invalid(
            r.to_string(),
            format!("not an OCI reference ({e}); write REGISTRY/REPOSITORY:TAG, such as registry.example.org/lectern/engagement:0.2.0"),
        )
    })
}

fn registry_error(what: &str, r: &str, e: impl std::fmt::Display) -> Error {
    Error::NotFound(format!("cannot {what} {r}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(anyhow::anyhow!("cannot start the network runtime: {e}")))
}

/// Pushes `package` to `target` (`REGISTRY/REPOSITORY:TAG`); gives the
/// manifest's digest as the registry names it.
pub fn push(package: &Package, target: &str, options: &RegistryOptions) -> Result<String> {
    let r = reference(target)?;
    let client = options.client();
    runtime()?.block_on(async {
        client
            .store_auth_if_needed(r.resolve_registry(), &options.auth())
            .await;
        for (digest, data) in package.blobs() {
            if client.blob_exists(&r, digest).await.unwrap_or(false) {
                continue;
            }
            client
                .push_blob(&r, data.to_vec(), digest)
                .await
                .map_err(|e| registry_error("push to", target, e))?;
        }
        client
            .push_manifest_raw(
                &r,
                package.oci_manifest().to_vec(),
                http::HeaderValue::from_static(IMAGE_MANIFEST),
            )
            .await
            .map_err(|e| registry_error("push the manifest to", target, e))?;
        Ok(package.digest().to_string())
    })
}

/// Pulls the package at `source`, checking every blob against its digest;
/// at most `max_bytes` in all.
pub fn pull(source: &str, options: &RegistryOptions, max_bytes: u64) -> Result<Package> {
    let r = reference(source)?;
    let client = options.client();
    let rt = runtime()?;
    let (manifest, _) = rt
        .block_on(client.pull_manifest_raw(&r, &options.auth(), &[IMAGE_MANIFEST]))
        .map_err(|e| registry_error("pull", source, e))?;
    let mut total = manifest.len() as u64;
    Package::from_parts(manifest.to_vec(), source, |d: &OciDescriptor, what| {
        total += d.size.max(0) as u64;
        if total > max_bytes {
            return Err(Error::invalid(
                source.to_string(),
                format!("the package is over the host's cap of {max_bytes} bytes"),
            ));
        }
        // At most the declared size is taken, however much the registry
        // sends; oci-client checks the digest once the blob is in.
        let mut data = Capped {
            bytes: Vec::with_capacity(d.size.max(0) as usize),
            cap: d.size.max(0) as usize,
        };
        rt.block_on(client.pull_blob(&r, d, &mut data))
            .map_err(|e| registry_error(&format!("pull {what} of"), source, e))?;
        let data = data.bytes;
        if crate::package::digest_of(&data) != d.digest {
            return Err(Error::invalid(
                source.to_string(),
                format!("{what} does not match its digest {}", d.digest),
            ));
        }
        Ok(data)
    })
}

/// A buffer that refuses to grow past `cap`: a registry that sends more
/// than a blob's descriptor says fails the pull instead of filling memory.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.cap {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the blob's descriptor declares",
                self.cap
            ))));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::Capped;

    #[test]
    fn a_blob_longer_than_its_descriptor_is_refused() {
        let rt = super::runtime().unwrap();
        let mut fits = Capped {
            bytes: Vec::new(),
            cap: 4,
        };
        rt.block_on(fits.write_all(b"four")).unwrap();
        assert_eq!(fits.bytes, b"four");
        let mut over = Capped {
            bytes: Vec::new(),
            cap: 4,
        };
        let err = rt.block_on(over.write_all(b"fives")).unwrap_err();
        assert!(err.to_string().contains("more than the 4 bytes"), "{err}");
        assert!(over.bytes.is_empty(), "nothing past the cap is kept");
    }
}
