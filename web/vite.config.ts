// Vite build of the tradebus web page (docs/design.md, "The web page").
// `npm run dev` serves it with the API proxied to a local gateway.
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

const gateway = "http://127.0.0.1:8080";

export default defineConfig({
  base: "/",
  plugins: [preact()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      "/api": { target: gateway, changeOrigin: false, ws: true },
      "/healthz": { target: gateway },
    },
  },
});
