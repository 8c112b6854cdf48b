// Tailwind v4 reads this through `@config` in static/css/input.css. The class
// sources are listed there with `@source`; this file only extends the theme,
// so the brand lives in one place for every page.
/** @type {import('tailwindcss').Config} */
module.exports = {
  theme: {
    extend: {
      colors: {
        brand: {
          50: "#eef6ff",
          100: "#d9eaff",
          500: "#2f6fed",
          600: "#1f56d1",
          700: "#1a45a6",
          900: "#142b5e",
        },
      },
      fontFamily: {
        sans: [
          "ui-sans-serif",
          "system-ui",
          "-apple-system",
          "Segoe UI",
          "Roboto",
          "Helvetica Neue",
          "Arial",
          "sans-serif",
        ],
      },
    },
  },
};
